package cache

import (
	"strings"
	"testing"
	"time"
)

func TestOptionsValidate(t *testing.T) {
	tests := map[string]struct {
		opts         Options
		wantProblems []string // substrings, one per reported problem; none: valid
	}{
		"zero value takes the defaults": {opts: Options{}},
		"explicit sane values":          {opts: Options{MaxEntries: 10, MaxTTL: time.Minute, NegativeTTL: 5 * time.Second, FlightTimeout: time.Second, Shards: 8}},
		"MaxTTL of exactly 15 minutes":  {opts: Options{MaxTTL: 15 * time.Minute}},
		"negative MaxEntries":           {opts: Options{MaxEntries: -1}, wantProblems: []string{"MaxEntries -1"}},
		"absurd MaxEntries":             {opts: Options{MaxEntries: 1 << 30}, wantProblems: []string{"MaxEntries 1073741824"}},
		"MaxTTL beyond the token lifetime": {
			opts: Options{MaxTTL: time.Hour}, wantProblems: []string{"MaxTTL 1h0m0s"},
		},
		"negative MaxTTL":      {opts: Options{MaxTTL: -time.Second}, wantProblems: []string{"MaxTTL -1s"}},
		"negative NegativeTTL": {opts: Options{NegativeTTL: -time.Second}, wantProblems: []string{"NegativeTTL -1s"}},
		"NegativeTTL above MaxTTL": {
			opts: Options{MaxTTL: 5 * time.Second, NegativeTTL: 10 * time.Second}, wantProblems: []string{"NegativeTTL 10s: must not exceed MaxTTL 5s"},
		},
		"NegativeTTL above the default MaxTTL": {
			opts: Options{NegativeTTL: 3 * time.Minute}, wantProblems: []string{"must not exceed MaxTTL 2m0s"},
		},
		"StaleRetry above MaxTTL":   {opts: Options{MaxTTL: 2 * time.Second, NegativeTTL: time.Second, StaleRetry: 3 * time.Second}, wantProblems: []string{"StaleRetry 3s"}},
		"negative StaleRetry":       {opts: Options{StaleRetry: -time.Second}, wantProblems: []string{"StaleRetry -1s"}},
		"FlightTimeout too long":    {opts: Options{FlightTimeout: time.Hour}, wantProblems: []string{"FlightTimeout 1h0m0s"}},
		"Shards not a power of two": {opts: Options{Shards: 3}, wantProblems: []string{"(Shards) 3"}},
		"Shards too many":           {opts: Options{Shards: 512}, wantProblems: []string{"(Shards) 512"}},
		"more shards than entries":  {opts: Options{MaxEntries: 4, Shards: 8}, wantProblems: []string{"(Shards) 8: must not exceed MaxEntries 4"}},
		"every problem is reported": {
			opts:         Options{MaxEntries: -5, MaxTTL: time.Hour, NegativeTTL: -1, FlightTimeout: -1, Shards: 6},
			wantProblems: []string{"MaxEntries -5", "MaxTTL 1h0m0s", "NegativeTTL -1ns", "FlightTimeout -1ns", "(Shards) 6"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.opts.Validate()
			if len(tc.wantProblems) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want problems %q", tc.wantProblems)
			}
			msg := err.Error()
			for _, want := range tc.wantProblems {
				if !strings.Contains(msg, want) {
					t.Errorf("Validate() = %q, want it to mention %q", msg, want)
				}
			}
			if got := strings.Count(msg, "\n") + 1; got != len(tc.wantProblems) {
				t.Errorf("Validate() reported %d problems, want %d: %q", got, len(tc.wantProblems), msg)
			}
		})
	}
}

func TestOptionsDefaultShards(t *testing.T) {
	tests := map[string]struct {
		maxEntries int
		wantShards int
	}{
		"small cache: one exact LRU": {maxEntries: 100, wantShards: 1},
		"just below the threshold":   {maxEntries: shardThreshold - 1, wantShards: 1},
		"at the threshold":           {maxEntries: shardThreshold, wantShards: defaultShards},
		"default size":               {maxEntries: 0, wantShards: defaultShards},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := (Options{MaxEntries: tc.maxEntries}).withDefaults().Shards; got != tc.wantShards {
				t.Errorf("Shards = %d, want %d", got, tc.wantShards)
			}
		})
	}
}
