package envoy

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// walk calls fn on m and on every message nested in it, depth first. A
// google.protobuf.Any is opened into its registered type and walked too; with repack set,
// the (possibly edited) inner message is marshalled back into the Any afterwards. This is
// how edits and checks reach the typed_config blocks, which are opaque bytes otherwise.
func walk(m protoreflect.Message, repack bool, fn func(protoreflect.Message) error) error {
	if err := fn(m); err != nil {
		return err
	}
	if a, ok := m.Interface().(*anypb.Any); ok {
		return walkAny(a, repack, fn)
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			list := v.List()
			for i := 0; i < list.Len() && err == nil; i++ {
				err = walk(list.Get(i).Message(), repack, fn)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				err = walk(mv.Message(), repack, fn)
				return err == nil
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			err = walk(v.Message(), repack, fn)
		}
		return err == nil
	})
	return err
}

func walkAny(a *anypb.Any, repack bool, fn func(protoreflect.Message) error) error {
	inner, err := a.UnmarshalNew()
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, a.GetTypeUrl(), err)
	}
	if err := walk(inner.ProtoReflect(), repack, fn); err != nil {
		return err
	}
	if !repack {
		return nil
	}
	// Deterministic, so that two equal configs repack to equal bytes (proto.Equal
	// compares an Any's bytes, and map fields would otherwise encode in random order).
	if err := anypb.MarshalFrom(a, inner, proto.MarshalOptions{Deterministic: true}); err != nil {
		return fmt.Errorf("%w: repack %s: %v", ErrInvalid, a.GetTypeUrl(), err)
	}
	return nil
}

// Edit calls fn with every message of type T anywhere in b, including inside typed_config
// blocks, and writes the changes back. Tests use it to derive a variant of a reviewed
// config (a shorter max_stream_duration, a broken policy) without a second YAML file.
func Edit[T proto.Message](b proto.Message, fn func(T) error) error {
	return walk(b.ProtoReflect(), true, func(m protoreflect.Message) error {
		if t, ok := m.Interface().(T); ok {
			return fn(t)
		}
		return nil
	})
}

// Find returns every message of type T anywhere in b, including inside typed_config
// blocks. The results are copies: changing them does not change b (use Edit).
func Find[T proto.Message](b proto.Message) ([]T, error) {
	var out []T
	err := walk(b.ProtoReflect(), false, func(m protoreflect.Message) error {
		if t, ok := m.Interface().(T); ok {
			out = append(out, t)
		}
		return nil
	})
	return out, err
}
