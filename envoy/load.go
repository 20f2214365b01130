package envoy

import (
	"errors"
	"fmt"
	"io"
	"os"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"
)

// ErrInvalid is wrapped by every error about a config that does not decode or does not
// pass Envoy's own field constraints (protoc-gen-validate rules).
var ErrInvalid = errors.New("invalid envoy config")

// maxConfigBytes bounds what Load reads: the reviewed configs are a few KiB, and a
// bootstrap is never megabytes.
const maxConfigBytes = 1 << 20

// Load reads an Envoy bootstrap from a YAML (or JSON) file and validates it; see Parse.
func Load(path string) (*bootstrapv3.Bootstrap, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxConfigBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalid, path, maxConfigBytes)
	}
	b, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// Parse decodes an Envoy bootstrap from YAML or JSON the way Envoy does: YAML anchors
// resolved, unknown fields rejected, every "@type" block decoded into its registered
// type. Duplicate YAML keys are an error (Envoy would silently keep the last one, which
// hides a reviewer's mistake). Then Envoy's field constraints are checked with the
// generated ValidateAll on the bootstrap and on every typed_config inside it, since
// ValidateAll does not look inside google.protobuf.Any.
func Parse(data []byte) (*bootstrapv3.Bootstrap, error) {
	if len(data) > maxConfigBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, maxConfigBytes)
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("%w: yaml: %v", ErrInvalid, err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := validateAll(b); err != nil {
		return nil, err
	}
	return b, nil
}

// validateAll runs ValidateAll on b and on the content of every Any in it.
func validateAll(b *bootstrapv3.Bootstrap) error {
	type validator interface{ ValidateAll() error }
	var errs []error
	if err := b.ValidateAll(); err != nil {
		errs = append(errs, err)
	}
	err := walk(b.ProtoReflect(), false, func(m protoreflect.Message) error {
		a, ok := m.Interface().(*anypb.Any)
		if !ok {
			return nil
		}
		inner, err := a.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrInvalid, a.GetTypeUrl(), err)
		}
		// The inner message's own ValidateAll recurses through its ordinary fields;
		// nested Anys are reached by walk.
		if v, ok := inner.(validator); ok {
			if err := v.ValidateAll(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", inner.ProtoReflect().Descriptor().FullName(), err))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	return nil
}
