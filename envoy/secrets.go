package envoy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"
)

// Secrets are the SDS files a bootstrap reads through path_config_source (file-based
// SDS: the listener certificate, the API servers' CAs), by the path the bootstrap
// names. Each file is a DiscoveryResponse whose resources are tls Secrets, the format
// Envoy reads from such a path.
type Secrets map[string][]*tlsv3.Secret

// SecretSources returns the path_config_source of every SDS secret config in b, by
// path, with the secret names read from each.
func SecretSources(b proto.Message) (map[string][]string, error) {
	configs, err := Find[*tlsv3.SdsSecretConfig](b)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, sc := range configs {
		p := sc.GetSdsConfig().GetPathConfigSource().GetPath()
		if p == "" {
			continue
		}
		out[p] = append(out[p], sc.GetName())
	}
	return out, nil
}

// LoadSecrets reads every SDS file b names from dir by its base name: the reviewed SDS
// files are envoy/sds/*.yaml in the repository and keys of the Envoy ConfigMap in a pod
// (mounted with the bootstrap at /etc/envoy), so the file for /etc/envoy/x.yaml is
// dir/x.yaml.
func LoadSecrets(b *bootstrapv3.Bootstrap, dir string) (Secrets, error) {
	sources, err := SecretSources(b)
	if err != nil {
		return nil, err
	}
	out := Secrets{}
	for p := range sources {
		local := filepath.Join(dir, path.Base(p))
		data, err := readBounded(local)
		if err != nil {
			return nil, err
		}
		s, err := ParseSecrets(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", local, err)
		}
		out[p] = s
	}
	return out, nil
}

func readBounded(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if len(data) > maxConfigBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalid, p, maxConfigBytes)
	}
	return data, nil
}

// ParseSecrets decodes one SDS file (YAML or JSON) strictly, like Parse: unknown fields
// and duplicate keys are errors, every resource must be a tls Secret, and Envoy's field
// constraints are checked.
func ParseSecrets(data []byte) ([]*tlsv3.Secret, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("%w: yaml: %v", ErrInvalid, err)
	}
	resp := &discoveryv3.DiscoveryResponse{}
	if err := protojson.Unmarshal(js, resp); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var out []*tlsv3.Secret
	var errs []error
	for i, r := range resp.GetResources() {
		s := &tlsv3.Secret{}
		if err := r.UnmarshalTo(s); err != nil {
			errs = append(errs, fmt.Errorf("resources[%d]: want a %s, got %s", i, proto.MessageName(s), r.GetTypeUrl()))
			continue
		}
		if err := s.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("resources[%d]: %w", i, err))
			continue
		}
		out = append(out, s)
	}
	if len(out) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("no resources"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	return out, nil
}

// marshalSecrets renders secrets as the DiscoveryResponse JSON Envoy reads.
func marshalSecrets(secrets []*tlsv3.Secret) ([]byte, error) {
	resp := &discoveryv3.DiscoveryResponse{}
	for _, s := range secrets {
		a, err := anypb.New(s)
		if err != nil {
			return nil, err
		}
		resp.Resources = append(resp.Resources, a)
	}
	return protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(resp)
}

// secretFiles lists the data files and watched directories the secrets name.
func (s Secrets) filesAndDirs() (files, dirs []string, err error) {
	fs, ds := map[string]bool{}, map[string]bool{}
	for _, p := range sortedKeys(s) {
		for _, sec := range s[p] {
			sources, err := Find[*corev3.DataSource](sec)
			if err != nil {
				return nil, nil, err
			}
			for _, src := range sources {
				if f := src.GetFilename(); f != "" {
					fs[f] = true
				}
			}
			watched, err := Find[*corev3.WatchedDirectory](sec)
			if err != nil {
				return nil, nil, err
			}
			for _, w := range watched {
				ds[w.GetPath()] = true
			}
		}
	}
	for f := range fs {
		files = append(files, f)
	}
	for d := range ds {
		dirs = append(dirs, d)
	}
	sort.Strings(files)
	sort.Strings(dirs)
	return files, dirs, nil
}

// LoadWithSecrets loads the bootstrap at configPath and its SDS files from the sds
// directory beside it (envoy/sidecar.yaml reads envoy/sds/*.yaml).
func LoadWithSecrets(configPath string) (*bootstrapv3.Bootstrap, Secrets, error) {
	b, err := Load(configPath)
	if err != nil {
		return nil, nil, err
	}
	s, err := LoadSecrets(b, filepath.Join(filepath.Dir(configPath), "sds"))
	if err != nil {
		return nil, nil, err
	}
	return b, s, nil
}
