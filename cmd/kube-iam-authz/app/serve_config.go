package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	yaml "go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// configError is one problem of the --config file, at a line when known, in
// the FILE:LINE: form editors and CI annotators understand.
func configError(path string, line int, format string, args ...any) error {
	pos := path
	if line > 0 {
		pos = path + ":" + strconv.Itoa(line)
	}
	return fmt.Errorf("--config %s: %s", pos, fmt.Sprintf(format, args...))
}

// yamlLine matches the position yaml.v3 puts in a syntax error.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlParserProblems are the messages of yaml.v3's parser (not its scanner).
// yaml.v3 (decode.go, parser.fail) adds one to the 0-based mark of scanner
// errors only, so a parser error's "line N" is the line before the one
// meant: "a: 1\nb: [x" reports line 1 for the list that starts on line 2.
var yamlParserProblems = []string{
	"did not find expected <document start>",
	"did not find expected key",
	"did not find expected node content",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
}

// applyConfigFile merges a YAML config file under the flags and the
// environment: keys present in the file replace the defaults, except those
// whose flag is already set (on the command line or by its variable).
// Unknown keys are an error (a typo must not silently leave a default in
// place). The file is decoded with go.yaml.in/yaml/v3, which keeps line
// numbers (sigs.k8s.io/yaml converts to JSON first and loses them), so
// every problem names FILE:LINE.
func (o *ServeOptions) applyConfigFile(path string, fs *pflag.FlagSet) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	if len(raw) > maxConfigBytes {
		return configError(path, 0, "larger than %d bytes", maxConfigBytes)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		msg := err.Error()
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			n, _ := strconv.Atoi(m[1])
			problem := strings.TrimPrefix(msg, m[0])
			if slices.Contains(yamlParserProblems, problem) {
				n++
			}
			return configError(path, n, "%s", problem)
		}
		return configError(path, 0, "%s", strings.TrimPrefix(msg, "yaml: "))
	}
	if len(doc.Content) == 0 {
		return nil // an empty file sets nothing
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return configError(path, top.Line, "want a mapping of flag names to values, got a %s", kindName(top))
	}
	known := jsonFields(reflect.TypeOf(*o))
	clusterKeys := jsonFields(reflect.TypeOf(ClusterOptions{}))
	var errs []error
	seen := map[string]int{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		// sigs.k8s.io/yaml's strict mode refused a repeated key; a YAML node
		// tree keeps both, and silently taking the last would hide a mistake.
		if first, dup := seen[k.Value]; dup {
			errs = append(errs, configError(path, k.Line, "%s repeats the key of line %d: keep one", k.Value, first))
			continue
		}
		seen[k.Value] = k.Line
		if _, ok := known[k.Value]; !ok {
			errs = append(errs, configError(path, k.Line, "unknown key %q%s", k.Value, suggest(k.Value, known)))
			continue
		}
		if k.Value == "clusters" {
			if nested := checkClusterKeys(path, v, clusterKeys); len(nested) > 0 {
				errs = append(errs, nested...)
				continue
			}
		}
		if fl := fs.Lookup(k.Value); fl != nil && fl.Changed {
			continue // the flag or its variable wins
		}
		if err := decodeConfigValue(o, k.Value, known[k.Value], v); err != nil {
			errs = append(errs, configError(path, v.Line, "%s: %v", k.Value, err))
		}
	}
	return errors.Join(errs...)
}

// decodeConfigValue decodes one value into the field whose JSON name is key,
// through JSON so that the field's own decoding (durations) applies.
func decodeConfigValue(o *ServeOptions, key string, field reflect.Type, v *yaml.Node) error {
	var val any
	if err := v.Decode(&val); err != nil {
		return err
	}
	js, err := json.Marshal(map[string]any{key: val})
	if err != nil {
		return fmt.Errorf("not representable: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(o); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case field == reflect.TypeOf(metav1.Duration{}):
			return fmt.Errorf("want a duration like 5s or 2m, got %q", v.Value)
		case errors.As(err, &te):
			return fmt.Errorf("want %s, got %s %s", typeName(te.Type), te.Value, strings.TrimSpace(v.Value))
		default:
			return errors.New(strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	return nil
}

// checkClusterKeys reports unknown keys of the clusters list at their lines.
func checkClusterKeys(path string, v *yaml.Node, known map[string]reflect.Type) []error {
	if v.Kind != yaml.SequenceNode {
		return nil // decodeConfigValue reports the type
	}
	var errs []error
	for i, item := range v.Content {
		if item.Kind != yaml.MappingNode {
			continue
		}
		for j := 0; j+1 < len(item.Content); j += 2 {
			if k := item.Content[j]; !has(known, k.Value) {
				errs = append(errs, configError(path, k.Line, "clusters[%d]: unknown key %q%s", i, k.Value, suggest(k.Value, known)))
			}
		}
	}
	return errs
}

func has(m map[string]reflect.Type, k string) bool { _, ok := m[k]; return ok }

// jsonFields maps the JSON names of a struct's fields (embedded ones
// included) to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			maps.Copy(out, jsonFields(f.Type))
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = f.Type
		}
	}
	return out
}

// suggest names the known key closest to a typo, if one is close (a few
// edits away, or the typo is the start of it: mapping for mappingFile).
func suggest(key string, known map[string]reflect.Type) string {
	// A prefix of a known key (4+ letters) counts as distance 1; among
	// equals, the nearer spelling wins ("mapping" is "mappingFile" rather
	// than "mappingConfigMap").
	best, bestDist, bestRaw := "", 3, 0
	lower := strings.ToLower(key)
	for _, k := range slices.Sorted(maps.Keys(known)) {
		raw := editDistance(lower, strings.ToLower(k))
		d := raw
		if len(lower) >= 4 && strings.HasPrefix(strings.ToLower(k), lower) {
			d = 1
		}
		if d < bestDist || (d == bestDist && best != "" && raw < bestRaw) {
			best, bestDist, bestRaw = k, d, raw
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	default:
		return "document"
	}
}

// typeName says in words what a field wants.
func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "a whole number"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list"
	default:
		return t.String()
	}
}
