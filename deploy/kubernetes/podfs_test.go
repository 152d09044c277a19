package k8s

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/certplane/certplane/deploy/deploytest"
	"github.com/certplane/certplane/xds/client"
)

// The objects docs/deploy.md has the operator create (they hold keys and
// the operator's own CA, so no manifest ships them), made here from the
// certificates `certplane init` writes.
var operatorObjects = map[string]map[string]string{ // object -> key -> file under init's certs/
	"Secret/certplane-server-default":   {"tls.crt": "server/default/tls.crt", "tls.key": "server/default/tls.key"},
	"ConfigMap/certplane-trust-clients": {"ca.pem": "trust/clients/ca.pem", "ca.crl": "trust/clients/ca.crl"},
}

var (
	initOnce sync.Once
	initDir  string
)

// objectData returns the files of every Secret and ConfigMap a pod may
// mount: those of the manifests, and the operator's made from init's PKI.
func objectData(t *testing.T, ms *manifests) map[string]map[string][]byte {
	t.Helper()
	initOnce.Do(func() {
		dir, err := os.MkdirTemp("", "certplane-k8s-init-")
		if err != nil {
			t.Fatal(err)
		}
		if _, stderr, code := deploytest.Run(t, "init", dir); code != 0 {
			os.RemoveAll(dir)
			t.Fatalf("certplane init: exit %d\n%s", code, stderr)
		}
		initDir = dir
	})
	if initDir == "" {
		t.Fatal("certplane init failed in an earlier test")
	}
	objs := map[string]map[string][]byte{}
	for name, cm := range ms.configMaps {
		files := map[string][]byte{}
		for k, v := range cm.Data {
			files[k] = []byte(v)
		}
		for k, v := range cm.BinaryData {
			files[k] = v
		}
		objs["ConfigMap/"+name] = files
	}
	for obj, keys := range operatorObjects {
		files := map[string][]byte{}
		for k, f := range keys {
			data, err := os.ReadFile(filepath.Join(initDir, "certs", f))
			if err != nil {
				t.Fatal(err)
			}
			files[k] = data
		}
		objs[obj] = files
	}
	return objs
}

// buildPodFS lays out under root what c sees at its mounts, as the kubelet
// writes it: a Secret or ConfigMap volume is a timestamped directory, a
// ..data symlink to it and one symlink per file, files mode 0440 (the
// defaultMode with fsGroup); an emptyDir is a directory of mode 0777
// (02777 with an fsGroup).
func buildPodFS(t *testing.T, ms *manifests, p pod, root string) {
	t.Helper()
	objs := objectData(t, ms)
	for _, m := range p.certplane.VolumeMounts {
		v := volume(p.spec, m.Name)
		dir := filepath.Join(root, m.MountPath)
		if v.EmptyDir != nil {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			// With an fsGroup the kubelet adds the setgid bit: new files
			// and directories inside take the pod's group.
			mode := fs.FileMode(0o777)
			if sc := p.spec.SecurityContext; sc != nil && sc.FSGroup != nil {
				mode |= fs.ModeSetgid
			}
			if err := os.Chmod(dir, mode); err != nil {
				t.Fatal(err)
			}
			continue
		}
		source, keyToPath := projected(t, ms, v)
		if source == "" {
			t.Fatalf("%s: volume %s: neither emptyDir, Secret nor ConfigMap", p.where, m.Name)
		}
		data, ok := objs[source]
		if !ok {
			t.Fatalf("%s: volume %s mounts %s, which neither the manifests nor docs/deploy.md's steps create", p.where, m.Name, source)
		}
		files := map[string][]byte{}
		for key, path := range keyToPath {
			b, ok := data[key]
			if !ok {
				t.Fatalf("%s: volume %s: %s has no key %s", p.where, m.Name, source, key)
			}
			files[path] = b
		}
		atomicWrite(t, dir, files)
	}
}

// atomicWrite is the kubelet's AtomicWriter layout of a volume.
func atomicWrite(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	ts := "..2026_12_03_16_00_00.000000001"
	if err := os.MkdirAll(filepath.Join(dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for path, b := range files {
		if strings.Contains(path, "/") {
			t.Fatalf("item path %q: a nested path puts a directory symlink where certplane expects files", path)
		}
		if err := os.WriteFile(filepath.Join(dir, ts, path), b, 0o440); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", path), filepath.Join(dir, path)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(ts, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

// TestCheckOnMountedFiles runs `certplane check` on what each pod's
// certplane container sees: the config of the ConfigMap with the
// operator's Secret and trust store, in the kubelet's layout. The shipped
// config must be valid and every listener served.
func TestCheckOnMountedFiles(t *testing.T) {
	ms := loadManifests(t)
	docs, err := os.ReadFile("../../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	for obj, keys := range operatorObjects {
		kind, name, _ := strings.Cut(obj, "/")
		if !strings.Contains(string(docs), name) {
			t.Errorf("docs/deploy.md does not say how to create %s", obj)
		}
		if kind != "ConfigMap" {
			continue // kubectl create secret tls names its keys tls.crt and tls.key
		}
		for key := range keys {
			if !strings.Contains(string(docs), "--from-file="+key+"=") {
				t.Errorf("docs/deploy.md: the steps do not create %s with key %s (--from-file=%s=FILE)", obj, key, key)
			}
		}
	}
	for _, p := range certplanePods(t, ms) {
		root := t.TempDir()
		buildPodFS(t, ms, p, root)
		stdout, stderr, code := deploytest.Run(t, "check",
			"--certs", filepath.Join(root, p.flags["certs"]), "--config", filepath.Join(root, p.flags["config"]))
		if code != 0 || !strings.Contains(stdout, "1 listener served, 0 blocked, 0 problems") {
			t.Errorf("%s: certplane check on the mounted files: exit %d\n%s%s", p.where, code, stdout, stderr)
		}
	}
}

// TestEnvoyBootstrapIsRendered keeps the bootstrap ConfigMap exactly what
// `certplane render --ads-bootstrap` prints for serve's --xds-address.
func TestEnvoyBootstrapIsRendered(t *testing.T) {
	ms := loadManifests(t)
	for _, p := range certplanePods(t, ms) {
		if p.sub != "serve" {
			continue
		}
		want, stderr, code := deploytest.Run(t, "render", "--ads-bootstrap", "--xds-address", p.flags["xds-address"])
		if code != 0 {
			t.Fatalf("certplane render: exit %d\n%s", code, stderr)
		}
		for _, c := range allContainers(p.spec) {
			file := envoyConfigArg(c)
			if file == "" {
				continue
			}
			v := volume(p.spec, mountAt(c, filepath.Dir(file)).Name)
			got := ms.configMaps[v.ConfigMap.Name].Data[filepath.Base(file)]
			if got != want {
				t.Errorf("ConfigMap %s %s differs from `certplane render --ads-bootstrap --xds-address %s`; regenerate it (docs/deploy.md)",
					v.ConfigMap.Name, filepath.Base(file), p.flags["xds-address"])
			}
		}
	}
}

// TestServeStartsInPodLayout runs certplane serve with the sidecar's own
// args on the pod's files, with the emptyDir mode 0777 as the kubelet
// makes it: serve must accept the layout, create its socket directory 0700
// and its socket 0600, and publish.
func TestServeStartsInPodLayout(t *testing.T) {
	ms := loadManifests(t)
	var p *pod
	for _, q := range certplanePods(t, ms) {
		if q.sub == "serve" {
			p = &q
		}
	}
	if p == nil {
		t.Fatal("no certplane serve container")
	}
	root, err := os.MkdirTemp("", "cpk8s")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	buildPodFS(t, ms, *p, root)
	args := []string{}
	for _, a := range p.certplane.Args {
		k, v, ok := strings.Cut(a, "=")
		switch {
		case ok && strings.HasPrefix(v, "unix:///"):
			a = k + "=unix://" + filepath.Join(root, strings.TrimPrefix(v, "unix://"))
		case ok && strings.HasPrefix(v, "/"):
			a = k + "=" + filepath.Join(root, v)
		}
		args = append(args, a)
	}
	// A free port for the admin endpoint, never the default one.
	args = append(args, "--admin-address=127.0.0.1:0")
	sock := filepath.Join(root, strings.TrimPrefix(p.flags["xds-address"], "unix://"))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, deploytest.Binary(t), args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	// serve logs JSON lines on stderr; the test waits for its first
	// publish. Lines past the buffer are dropped, so serve never blocks.
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	lines := make(chan string, 4096)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		pw.Close()
		exited <- err
	}()
	defer func() {
		cancel()
		<-exited
	}()
	var logged strings.Builder
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("serve's log ended before a publish:\n%s", logged.String())
			}
			logged.WriteString(l + "\n")
			if strings.Contains(l, `"msg":"reload: published"`) {
				break wait
			}
		case err := <-exited:
			exited <- err
			for l := range lines {
				logged.WriteString(l + "\n")
			}
			t.Fatalf("serve exited (%v) before a publish:\n%s", err, logged.String())
		case <-ctx.Done():
			t.Fatalf("serve did not publish within 2 minutes:\n%s", logged.String())
		}
	}
	for path, want := range map[string]fs.FileMode{sock: fs.ModeSocket | 0o600, filepath.Dir(sock): fs.ModeDir | 0o700} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (fs.ModeType | fs.ModePerm); got != want {
			t.Errorf("%s: mode %v, want %v", path, got, want)
		}
	}
	// Envoy's side: an ADS client with the bootstrap's node id, on the
	// socket the bootstrap names, gets the ConfigMap's listener with its
	// certificate and trust store.
	got := fetchXDS(ctx, t, "unix://"+sock, bootstrapNodeID(t, ms, p.spec))
	if len(got.Listeners) != 1 || len(got.Secrets) != 2 {
		t.Errorf("xDS over the pod's socket: %d listeners, %d secrets; want the config's 1 listener and its 2 secrets (server certificate, trust store)",
			len(got.Listeners), len(got.Secrets))
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		t.Errorf("serve after SIGTERM: %v", err)
	}
	exited <- nil
}

// fetchXDS subscribes to target as an xDS client until it holds a listener
// and every secret that listener references, or ctx ends.
func fetchXDS(ctx context.Context, t *testing.T, target, nodeID string) client.Resources {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var last client.Resources
	err := client.Run(ctx, client.Config{
		Target: target, NodeID: nodeID, NodeCluster: "certplane",
		OnUpdate: func(r client.Resources) {
			last = r
			if len(r.Listeners) > 0 && len(r.Secrets) >= 2 {
				cancel()
			}
		},
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("xDS client on %s: %v", target, err)
	}
	return last
}

// bootstrapNodeID is the node id of the Envoy bootstrap in spec's pod.
func bootstrapNodeID(t *testing.T, ms *manifests, spec *corev1.PodSpec) string {
	t.Helper()
	for _, c := range allContainers(spec) {
		file := envoyConfigArg(c)
		if file == "" {
			continue
		}
		v := volume(spec, mountAt(c, filepath.Dir(file)).Name)
		var b struct {
			Node struct {
				ID string `json:"id"`
			} `json:"node"`
		}
		if err := yaml.Unmarshal([]byte(ms.configMaps[v.ConfigMap.Name].Data[filepath.Base(file)]), &b); err != nil {
			t.Fatal(err)
		}
		return b.Node.ID
	}
	t.Fatal("no Envoy container with a -c bootstrap")
	return ""
}
