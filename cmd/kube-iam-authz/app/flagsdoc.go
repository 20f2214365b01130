package app

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// FlagsMarkdown renders a flag set as a Markdown table (flag, default,
// description) so that the README's flag reference is generated from the
// usage strings in code rather than maintained by hand.
func FlagsMarkdown(fs *pflag.FlagSet) string {
	var b strings.Builder
	b.WriteString("| flag | default | description |\n|---|---|---|\n")
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
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", flag, def, strings.ReplaceAll(usage, "|", `\|`))
	})
	return b.String()
}
