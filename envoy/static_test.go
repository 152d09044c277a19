package envoy

import (
	"path/filepath"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Every golden case also renders as a static bootstrap that Envoy could run
// with no control plane: valid, no deprecated field, no ADS reference left,
// every secret it names present, and its YAML reads back to the same proto.
func TestStaticBootstrapGoldenCases(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "*", "input"))
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range dirs {
		dir := filepath.Dir(in)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := loadCase(t, dir)
			b, err := StaticBootstrap(m, BootstrapOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.ValidateAll(); err != nil {
				t.Fatalf("ValidateAll: %v", err)
			}
			if err := Validate(b); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if dep, err := DeprecatedFields(b); err != nil || len(dep) > 0 {
				t.Fatalf("deprecated fields %v (%v)", dep, err)
			}
			secrets := map[string]bool{}
			for _, s := range b.GetStaticResources().GetSecrets() {
				secrets[s.GetName()] = true
			}
			if err := walk(b.ProtoReflect(), func(msg protoreflect.Message) {
				switch v := msg.Interface().(type) {
				case *corev3.ConfigSource:
					t.Errorf("static bootstrap still has a config source: %v", v)
				case *tlsv3.SdsSecretConfig:
					if !secrets[v.GetName()] {
						t.Errorf("secret %q referenced but not in static_resources.secrets", v.GetName())
					}
				}
			}); err != nil {
				t.Fatal(err)
			}
			names := map[string]bool{} // listeners sharing an address are one
			for _, l := range m.Listeners {
				names[ListenerName(l)] = true
			}
			if len(b.GetStaticResources().GetListeners()) != len(names) {
				t.Errorf("%d listeners, want %d", len(b.GetStaticResources().GetListeners()), len(names))
			}
			y, err := MarshalYAML(b)
			if err != nil {
				t.Fatal(err)
			}
			var back bootstrapv3.Bootstrap
			if err := UnmarshalYAML(y, &back); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(b, &back) {
				t.Error("static bootstrap YAML does not read back to the same config")
			}
		})
	}
}
