package app

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// FlagsMarkdown renders a flag set as a Markdown table (flag, default,
// description) so that the README's flag reference is generated from the
// usage strings in code rather than maintained by hand.
//
// When the flags have environment variables (serve's KUBE_IAM_AUTHZ_<FLAG>),
// a column names each one.
func FlagsMarkdown(fs *pflag.FlagSet) string {
	var b strings.Builder
	withEnv := false
	fs.VisitAll(func(f *pflag.Flag) { withEnv = withEnv || len(f.Annotations[envAnnotation]) > 0 })
	if withEnv {
		b.WriteString("| flag | environment | default | description |\n|---|---|---|---|\n")
	} else {
		b.WriteString("| flag | default | description |\n|---|---|---|\n")
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		def := f.DefValue
		if def == "" || def == "[]" {
			def = " "
		} else {
			def = "`" + def + "`"
		}
		name, usage := pflag.UnquoteUsage(f)
		flag := "--" + f.Name
		if name != "" {
			flag += " " + name
		}
		usage = strings.ReplaceAll(usage, "|", `\|`)
		if withEnv {
			env := " "
			if names := f.Annotations[envAnnotation]; len(names) > 0 {
				env = "`" + names[0] + "`"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", flag, env, def, usage)
			return
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", flag, def, usage)
	})
	return b.String()
}
