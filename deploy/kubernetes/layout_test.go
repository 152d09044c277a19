package k8s

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/certplane/certplane/deploy/deploytest"
)

// pod is one Deployment's pod template with the certplane container that
// serves or proxies in it (serve, or proxy in standalone mode).
type pod struct {
	where     string
	spec      *corev1.PodSpec
	certplane *corev1.Container
	sub       string            // serve or proxy
	flags     map[string]string // certplane's flags
}

// certplanePods returns every pod running certplane serve or proxy.
func certplanePods(t *testing.T, ms *manifests) []pod {
	t.Helper()
	var pods []pod
	for _, d := range ms.deployments {
		spec := &d.Spec.Template.Spec
		for _, c := range allContainers(spec) {
			if !isCertplane(c) {
				continue
			}
			sub, flags := command(c.Args)
			if sub == "serve" || sub == "proxy" {
				pods = append(pods, pod{where: "Deployment " + d.Name + " container " + c.Name, spec: spec, certplane: c, sub: sub, flags: flags})
			}
		}
	}
	if len(pods) < 2 {
		t.Fatalf("want a certplane serve and a certplane proxy container, found %d", len(pods))
	}
	return pods
}

func volume(spec *corev1.PodSpec, name string) *corev1.Volume {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	return nil
}

// mountAt returns c's mount whose path is exactly dir.
func mountAt(c *corev1.Container, dir string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if filepath.Clean(c.VolumeMounts[i].MountPath) == filepath.Clean(dir) {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

// writableMountHolding returns c's writable emptyDir or PVC mount at dir or
// above it.
func writableMountHolding(spec *corev1.PodSpec, c *corev1.Container, dir string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		m := &c.VolumeMounts[i]
		v := volume(spec, m.Name)
		if m.ReadOnly || v == nil || (v.EmptyDir == nil && v.PersistentVolumeClaim == nil) {
			continue
		}
		if rel, err := filepath.Rel(m.MountPath, dir); err == nil && !strings.HasPrefix(rel, "..") {
			return m
		}
	}
	return nil
}

// projected lists the files a Secret or ConfigMap volume puts in its
// mount: its items' paths, or every key of the ConfigMap when it names no
// items (only possible for a ConfigMap of these manifests).
func projected(t *testing.T, ms *manifests, v *corev1.Volume) (source string, keyToPath map[string]string) {
	t.Helper()
	keyToPath = map[string]string{}
	var items []corev1.KeyToPath
	switch {
	case v.Secret != nil:
		source, items = "Secret/"+v.Secret.SecretName, v.Secret.Items
	case v.ConfigMap != nil:
		source, items = "ConfigMap/"+v.ConfigMap.Name, v.ConfigMap.Items
		if len(items) == 0 {
			cm := ms.configMaps[v.ConfigMap.Name]
			if cm == nil {
				t.Fatalf("volume %s: ConfigMap %s names no items and is not in the manifests: its files are unknown", v.Name, v.ConfigMap.Name)
			}
			for k := range cm.Data {
				items = append(items, corev1.KeyToPath{Key: k, Path: k})
			}
			for k := range cm.BinaryData {
				items = append(items, corev1.KeyToPath{Key: k, Path: k})
			}
		}
	default:
		return "", nil
	}
	for _, it := range items {
		keyToPath[it.Key] = it.Path
	}
	return source, keyToPath
}

// TestMountsAreCertplaneLayout checks each serve and proxy container: its
// args name directories that are mounts, the Secrets and ConfigMaps land
// in certplane's layout (certs/server/<name>/tls.crt and tls.key from a
// kubernetes.io/tls Secret; certs/trust/<store>/*.pem|*.crl), the config
// is a read-only ConfigMap, and what certplane writes (state directory,
// xDS socket directory, the standalone proxy's private socket under /tmp)
// is on a writable emptyDir.
func TestMountsAreCertplaneLayout(t *testing.T) {
	ms := loadManifests(t)
	for _, p := range certplanePods(t, ms) {
		c := p.certplane
		certs, config := p.flags["certs"], p.flags["config"]
		if !filepath.IsAbs(certs) || !filepath.IsAbs(config) {
			t.Errorf("%s: --certs %q and --config %q: want absolute paths", p.where, certs, config)
			continue
		}
		if m := mountAt(c, config); m == nil || !m.ReadOnly || volume(p.spec, m.Name) == nil || volume(p.spec, m.Name).ConfigMap == nil {
			t.Errorf("%s: --config %s is not a read-only ConfigMap mount", p.where, config)
		}
		servers, stores := 0, 0
		for _, m := range c.VolumeMounts {
			rel, err := filepath.Rel(certs, m.MountPath)
			if err != nil || strings.HasPrefix(rel, "..") {
				continue
			}
			v := volume(p.spec, m.Name)
			if v == nil {
				t.Errorf("%s: mount %s: no volume %q", p.where, m.MountPath, m.Name)
				continue
			}
			if !m.ReadOnly {
				t.Errorf("%s: mount %s under --certs is writable", p.where, m.MountPath)
			}
			source, files := projected(t, ms, v)
			parts := strings.Split(rel, string(filepath.Separator))
			switch {
			case len(parts) == 2 && (parts[0] == "server" || parts[0] == "client"):
				servers++
				if v.Secret == nil || !maps2Equal(files, map[string]string{"tls.crt": "tls.crt", "tls.key": "tls.key"}) {
					t.Errorf("%s: %s: want a kubernetes.io/tls Secret's tls.crt and tls.key (and nothing else), got %s %v", p.where, m.MountPath, source, files)
				}
			case len(parts) == 2 && parts[0] == "trust":
				stores++
				if source == "" || len(files) == 0 {
					t.Errorf("%s: %s: want a Secret or ConfigMap with the CA bundle and CRLs", p.where, m.MountPath)
				}
				cas := 0
				for key, path := range files {
					switch strings.ToLower(filepath.Ext(path)) {
					case ".pem", ".crt":
						cas++
					case ".crl":
					default:
						t.Errorf("%s: %s: key %s lands as %s, which certplane does not read (want *.pem, *.crt or *.crl)", p.where, m.MountPath, key, path)
					}
				}
				if cas == 0 {
					t.Errorf("%s: %s: no CA bundle (*.pem)", p.where, m.MountPath)
				}
			default:
				t.Errorf("%s: mount %s under --certs %s: want server/<name>, client/<name> or trust/<store>", p.where, m.MountPath, certs)
			}
		}
		if servers == 0 || stores == 0 {
			t.Errorf("%s: want at least one server certificate and one trust store under --certs %s", p.where, certs)
		}
		sd := p.flags["state-dir"]
		if m := writableMountHolding(p.spec, c, sd); sd == "" || m == nil {
			t.Errorf("%s: --state-dir %q: want it on a writable emptyDir or PersistentVolumeClaim", p.where, sd)
		} else if filepath.Clean(m.MountPath) == filepath.Clean(sd) {
			t.Errorf("%s: --state-dir %s is the volume's root (an emptyDir is mode 0777, which certplane refuses): name a directory inside it", p.where, sd)
		}
		switch p.sub {
		case "serve":
			checkSocket(t, ms, p)
		case "proxy":
			if p.flags["xds"] == "" && writableMountHolding(p.spec, c, "/tmp") == nil {
				t.Errorf("%s: standalone proxy: its embedded control plane's socket directory goes in /tmp, which is not writable", p.where)
			}
		}
		deploytest.CheckFlags(t, p.where, c.Args)
	}
}

func maps2Equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// checkSocket checks serve's unix socket against the pod: serve creates the
// socket's directory (0700) inside the emptyDir, because it refuses a
// directory others may write to and an emptyDir is mode 0777; Envoy mounts
// the same volume at the same path, its bootstrap names that socket, and it
// runs as serve's user (the socket is 0600).
func checkSocket(t *testing.T, ms *manifests, p pod) {
	t.Helper()
	sock, ok := strings.CutPrefix(p.flags["xds-address"], "unix://")
	if !ok {
		t.Errorf("%s: --xds-address %q: the sidecar talks over a unix socket", p.where, p.flags["xds-address"])
		return
	}
	sockDir := filepath.Dir(sock)
	m := writableMountHolding(p.spec, p.certplane, sockDir)
	switch {
	case m == nil:
		t.Errorf("%s: socket %s is on no writable emptyDir", p.where, sock)
		return
	case filepath.Clean(m.MountPath) != filepath.Dir(sockDir):
		t.Errorf("%s: socket %s: mount the emptyDir at %s, the parent of the socket's directory: serve refuses the emptyDir itself (mode 0777) and creates only the last directory",
			p.where, sock, filepath.Dir(sockDir))
	}
	envoys := 0
	for _, c := range allContainers(p.spec) {
		if !strings.HasPrefix(c.Image, "envoyproxy/envoy") {
			continue
		}
		envoys++
		where := p.where + ": Envoy container " + c.Name
		em := mountAt(c, m.MountPath)
		if em == nil || em.Name != m.Name {
			t.Errorf("%s: does not mount volume %s at %s", where, m.Name, m.MountPath)
		}
		if pipe := bootstrapPipe(t, ms, p.spec, c); pipe != sock {
			t.Errorf("%s: bootstrap's xDS pipe %q, serve listens on %q", where, pipe, sock)
		}
		serveSC := effective(p.spec.SecurityContext, p.certplane.SecurityContext)
		envoySC := effective(p.spec.SecurityContext, c.SecurityContext)
		if p.flags["xds-socket-mode"] != "0660" && (envoySC.runAsUser == nil || serveSC.runAsUser == nil || *envoySC.runAsUser != *serveSC.runAsUser) {
			t.Errorf("%s: runs as another user than serve, whose socket is mode 0600", where)
		}
	}
	if envoys != 1 {
		t.Errorf("%s: want one Envoy container beside serve, found %d", p.where, envoys)
	}
}

// bootstrapPipe returns the xDS pipe path of the bootstrap Envoy's -c names.
func bootstrapPipe(t *testing.T, ms *manifests, spec *corev1.PodSpec, c *corev1.Container) string {
	t.Helper()
	file := envoyConfigArg(c)
	m := mountAt(c, filepath.Dir(file))
	if m == nil || volume(spec, m.Name) == nil || volume(spec, m.Name).ConfigMap == nil {
		t.Fatalf("Envoy -c %s: not in a ConfigMap mount", file)
	}
	cm := ms.configMaps[volume(spec, m.Name).ConfigMap.Name]
	if cm == nil {
		t.Fatalf("Envoy -c %s: ConfigMap %s is not in the manifests", file, volume(spec, m.Name).ConfigMap.Name)
	}
	data, ok := cm.Data[filepath.Base(file)]
	if !ok {
		t.Fatalf("Envoy -c %s: ConfigMap %s has no key %s", file, cm.Name, filepath.Base(file))
	}
	var b struct {
		StaticResources struct {
			Clusters []struct {
				Name           string `json:"name"`
				LoadAssignment struct {
					Endpoints []struct {
						LbEndpoints []struct {
							Endpoint struct {
								Address struct {
									Pipe struct {
										Path string `json:"path"`
									} `json:"pipe"`
								} `json:"address"`
							} `json:"endpoint"`
						} `json:"lb_endpoints"`
					} `json:"endpoints"`
				} `json:"load_assignment"`
			} `json:"clusters"`
		} `json:"static_resources"`
	}
	if err := yaml.Unmarshal([]byte(data), &b); err != nil {
		t.Fatalf("ConfigMap %s %s: %v", cm.Name, filepath.Base(file), err)
	}
	for _, cl := range b.StaticResources.Clusters {
		if cl.Name != "certplane_xds" {
			continue
		}
		for _, e := range cl.LoadAssignment.Endpoints {
			for _, lb := range e.LbEndpoints {
				return lb.Endpoint.Address.Pipe.Path
			}
		}
	}
	return ""
}

func envoyConfigArg(c *corev1.Container) string {
	var args []string
	if len(c.Command) > 1 {
		args = slices.Clone(c.Command[1:])
	}
	args = append(args, c.Args...)
	for i, a := range args {
		if (a == "-c" || a == "--config-path") && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// TestPortsMatchConfig checks that the port each data plane pod declares
// (and its Service and Envoy's readiness probe target) is the port of the
// config's listener.
func TestPortsMatchConfig(t *testing.T) {
	ms := loadManifests(t)
	var listenerPorts []string
	for name, cm := range ms.configMaps {
		if name != "certplane-config" {
			continue
		}
		for file, data := range cm.Data {
			var cfg struct {
				Listeners []struct {
					Address string `json:"address"`
				} `json:"listeners"`
			}
			if err := yaml.Unmarshal([]byte(data), &cfg); err != nil {
				t.Fatalf("ConfigMap %s %s: %v", name, file, err)
			}
			for _, l := range cfg.Listeners {
				_, port, _ := strings.Cut(l.Address, ":")
				listenerPorts = append(listenerPorts, port)
			}
		}
	}
	if len(listenerPorts) == 0 {
		t.Fatal("ConfigMap certplane-config: no listener")
	}
	for _, p := range certplanePods(t, ms) {
		for _, c := range allContainers(p.spec) {
			for _, cp := range c.Ports {
				if cp.Name == "https" && !slices.Contains(listenerPorts, fmt.Sprint(cp.ContainerPort)) {
					t.Errorf("%s: container %s port https is %d; the config's listeners use %v", p.where, c.Name, cp.ContainerPort, listenerPorts)
				}
			}
		}
		if containerPort(p.spec, "https") == 0 {
			t.Errorf("%s: the pod declares no https port", p.where)
		}
	}
}
