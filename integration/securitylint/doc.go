// Package securitylint holds source checks that the compiler and staticcheck do not
// make: its tests read the product's Go files and fail on patterns this project bans
// for security reasons (see consttime_test.go). It has no code of its own.
package securitylint
