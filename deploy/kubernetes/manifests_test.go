// Package k8s tests the Kubernetes manifests in this directory: each one
// decodes strictly into the Kubernetes API types, the kustomization lists
// them all, and what they mount is certplane's directory layout.
package k8s

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/certplane/certplane/deploy/deploytest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	deploytest.Cleanup()
	if initDir != "" {
		os.RemoveAll(initDir)
	}
	os.Exit(code)
}

// manifests is every object of the directory, by kind.
type manifests struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	namespaces  []*corev1.Namespace
	files       map[string]string // object "Kind/name" -> file
}

// kustomization is the part of kustomize's Kustomization these manifests
// use; decoding it strictly catches a key this test does not know.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

func readKustomization(t *testing.T) kustomization {
	t.Helper()
	data, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	return k
}

// manifestFiles lists the YAML files of this directory but the
// kustomization.
func manifestFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	files = slices.DeleteFunc(files, func(f string) bool { return f == "kustomization.yaml" })
	sort.Strings(files)
	return files
}

// documents splits a YAML stream on its "---" lines.
func documents(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(data, []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(d))) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

func stripComments(d []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(d, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// loadManifests decodes every manifest strictly (an unknown or duplicate
// field is an error) into its Kubernetes API type.
func loadManifests(t *testing.T) *manifests {
	t.Helper()
	ms := &manifests{configMaps: map[string]*corev1.ConfigMap{}, files: map[string]string{}}
	for _, file := range manifestFiles(t) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range documents(data) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s document %d: %v", file, i+1, err)
			}
			var obj interface{ GetName() string }
			switch tm.APIVersion + " " + tm.Kind {
			case "apps/v1 Deployment":
				d := &appsv1.Deployment{}
				ms.deployments = append(ms.deployments, d)
				obj = d
			case "v1 Service":
				s := &corev1.Service{}
				ms.services = append(ms.services, s)
				obj = s
			case "v1 ConfigMap":
				c := &corev1.ConfigMap{}
				obj = c
			case "v1 Namespace":
				n := &corev1.Namespace{}
				ms.namespaces = append(ms.namespaces, n)
				obj = n
			default:
				t.Fatalf("%s document %d: kind %q %q: not one this test decodes; add it", file, i+1, tm.APIVersion, tm.Kind)
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Fatalf("%s document %d (%s): %v", file, i+1, tm.Kind, err)
			}
			key := tm.Kind + "/" + obj.GetName()
			if obj.GetName() == "" {
				t.Fatalf("%s document %d: %s without a name", file, i+1, tm.Kind)
			}
			if prev, ok := ms.files[key]; ok {
				t.Fatalf("%s: %s is also defined in %s", file, key, prev)
			}
			ms.files[key] = file
			if c, ok := obj.(*corev1.ConfigMap); ok {
				ms.configMaps[c.Name] = c
			}
		}
	}
	return ms
}

func TestManifestsDecodeStrictly(t *testing.T) {
	ms := loadManifests(t)
	if len(ms.deployments) < 2 || len(ms.services) < 2 {
		t.Fatalf("want the sidecar and proxy Deployments and Services, got %d Deployments, %d Services", len(ms.deployments), len(ms.services))
	}
	// The strict decoder itself: it must refuse an unknown field, or the
	// test above proves nothing.
	bad := []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      containers: [{name: c, imagePullPolicy: IfNotPresent, readOnlyRootFS: true}]\n")
	if err := yaml.UnmarshalStrict(bad, &appsv1.Deployment{}); err == nil || !strings.Contains(err.Error(), "readOnlyRootFS") {
		t.Fatalf("strict decoding accepted an unknown field: %v", err)
	}
}

func TestKustomizationListsEveryFile(t *testing.T) {
	k := readKustomization(t)
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml: apiVersion %q kind %q", k.APIVersion, k.Kind)
	}
	files := manifestFiles(t)
	listed := slices.Clone(k.Resources)
	sort.Strings(listed)
	if !slices.Equal(listed, files) {
		t.Errorf("kustomization.yaml resources %v, want every manifest of the directory %v", listed, files)
	}
	ms := loadManifests(t)
	if len(ms.namespaces) != 1 || ms.namespaces[0].Name != k.Namespace {
		t.Errorf("want one Namespace manifest named %q (the kustomization's namespace)", k.Namespace)
	}
	// The images entry must name the image the manifests run.
	for _, img := range k.Images {
		found := false
		for _, d := range ms.deployments {
			for _, c := range allContainers(&d.Spec.Template.Spec) {
				found = found || imageName(c.Image) == img.Name
			}
		}
		if !found {
			t.Errorf("kustomization.yaml images: %q is no container's image", img.Name)
		}
	}
}

// TestServicesSelectPods checks that each Service selects a Deployment's
// pods and targets a port that pod's containers declare.
func TestServicesSelectPods(t *testing.T) {
	ms := loadManifests(t)
	for _, s := range ms.services {
		var pod *corev1.PodTemplateSpec
		for _, d := range ms.deployments {
			if matches(s.Spec.Selector, d.Spec.Template.Labels) {
				pod = &d.Spec.Template
			}
		}
		if pod == nil {
			t.Errorf("Service %s selects no Deployment's pods", s.Name)
			continue
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.StrVal != "" && containerPort(&pod.Spec, p.TargetPort.StrVal) == 0 {
				t.Errorf("Service %s port %s: no container port named %q", s.Name, p.Name, p.TargetPort.StrVal)
			}
		}
	}
	for _, d := range ms.deployments {
		if !matches(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
			t.Errorf("Deployment %s: selector does not match its pod labels", d.Name)
		}
	}
}

func matches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func containerPort(spec *corev1.PodSpec, name string) int32 {
	for _, c := range allContainers(spec) {
		for _, p := range c.Ports {
			if p.Name == name {
				return p.ContainerPort
			}
		}
	}
	return 0
}

// allContainers lists init containers (certplane serve is a native sidecar)
// and containers.
func allContainers(spec *corev1.PodSpec) []*corev1.Container {
	var cs []*corev1.Container
	for i := range spec.InitContainers {
		cs = append(cs, &spec.InitContainers[i])
	}
	for i := range spec.Containers {
		cs = append(cs, &spec.Containers[i])
	}
	return cs
}

// imageName is an image reference without its tag.
func imageName(ref string) string {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i]
	}
	return ref
}

// isCertplane reports whether c runs the certplane image.
func isCertplane(c *corev1.Container) bool { return imageName(c.Image) == "certplane" }
