package k8s

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// The certplane image's user (Dockerfile: USER 65532:65532).
const certplaneUID = 65532

// TestPodsAreLockedDown checks every pod and container for what the
// restricted Pod Security Standard asks and more: non-root, read-only root
// file system, no privilege escalation, no capabilities, the runtime's
// seccomp profile, no service account token, no host namespaces.
func TestPodsAreLockedDown(t *testing.T) {
	ms := loadManifests(t)
	for _, d := range ms.deployments {
		spec := &d.Spec.Template.Spec
		where := "Deployment " + d.Name
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken must be false (certplane never calls the API server)", where)
		}
		if spec.HostNetwork || spec.HostPID || spec.HostIPC {
			t.Errorf("%s: host namespaces", where)
		}
		for _, c := range allContainers(spec) {
			where := where + " container " + c.Name
			sc := effective(spec.SecurityContext, c.SecurityContext)
			if sc.runAsNonRoot == nil || !*sc.runAsNonRoot {
				t.Errorf("%s: runAsNonRoot is not true", where)
			}
			if sc.runAsUser == nil || *sc.runAsUser == 0 {
				t.Errorf("%s: no non-root runAsUser", where)
			} else if isCertplane(c) && *sc.runAsUser != certplaneUID {
				t.Errorf("%s: runAsUser %d, want the image's %d", where, *sc.runAsUser, certplaneUID)
			}
			if sc.seccomp == nil || sc.seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s: seccompProfile is not RuntimeDefault", where)
			}
			csc := c.SecurityContext
			if csc == nil {
				t.Errorf("%s: no securityContext", where)
				continue
			}
			if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
				t.Errorf("%s: allowPrivilegeEscalation is not false", where)
			}
			if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
				t.Errorf("%s: readOnlyRootFilesystem is not true", where)
			}
			if csc.Privileged != nil && *csc.Privileged {
				t.Errorf("%s: privileged", where)
			}
			if csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(csc.Capabilities.Add) > 0 {
				t.Errorf("%s: capabilities must drop ALL and add none, got %+v", where, csc.Capabilities)
			}
		}
	}
}

// secContext is a container's security context after the pod's defaults.
type secContext struct {
	runAsNonRoot *bool
	runAsUser    *int64
	seccomp      *corev1.SeccompProfile
}

func effective(pod *corev1.PodSecurityContext, c *corev1.SecurityContext) secContext {
	var sc secContext
	if pod != nil {
		sc = secContext{pod.RunAsNonRoot, pod.RunAsUser, pod.SeccompProfile}
	}
	if c != nil {
		if c.RunAsNonRoot != nil {
			sc.runAsNonRoot = c.RunAsNonRoot
		}
		if c.RunAsUser != nil {
			sc.runAsUser = c.RunAsUser
		}
		if c.SeccompProfile != nil {
			sc.seccomp = c.SeccompProfile
		}
	}
	return sc
}

// TestProbes checks that every container has its probes, that certplane's
// run the binary against its own loopback admin endpoint (/healthz for
// liveness, /readyz for readiness), and that each probe's port exists.
func TestProbes(t *testing.T) {
	ms := loadManifests(t)
	for _, d := range ms.deployments {
		spec := &d.Spec.Template.Spec
		for _, c := range allContainers(spec) {
			where := "Deployment " + d.Name + " container " + c.Name
			if c.ReadinessProbe == nil {
				t.Errorf("%s: no readiness probe", where)
				continue
			}
			if !isCertplane(c) {
				checkProbePort(t, where, spec, c.ReadinessProbe)
				continue
			}
			if c.LivenessProbe == nil {
				t.Errorf("%s: no liveness probe", where)
				continue
			}
			sub, flags := command(c.Args)
			if sub == "backend" {
				checkProbePort(t, where, spec, c.ReadinessProbe)
				checkProbePort(t, where, spec, c.LivenessProbe)
				continue
			}
			admin := adminAddress(sub, flags)
			if !strings.HasPrefix(admin, "127.0.0.1:") {
				t.Errorf("%s: admin address %q: keep it on loopback (/status names files and clients)", where, admin)
			}
			for _, p := range []struct {
				kind  string
				probe *corev1.Probe
				path  string
			}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}, {"startup", c.StartupProbe, "/healthz"}} {
				if p.probe == nil {
					continue
				}
				want := []string{"/certplane", "backend", "--probe", "http://" + admin + p.path}
				if p.probe.Exec == nil || !slices.Equal(p.probe.Exec.Command, want) {
					t.Errorf("%s: %s probe %+v, want exec %q", where, p.kind, p.probe.ProbeHandler, want)
				}
			}
			if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways && c.StartupProbe == nil {
				t.Errorf("%s: a native sidecar needs a startup probe, or the main containers start before its socket exists", where)
			}
		}
	}
}

func checkProbePort(t *testing.T, where string, spec *corev1.PodSpec, p *corev1.Probe) {
	t.Helper()
	var port string
	switch {
	case p.TCPSocket != nil:
		port = p.TCPSocket.Port.StrVal
	case p.HTTPGet != nil:
		port = p.HTTPGet.Port.StrVal
	default:
		t.Errorf("%s: probe %+v: want tcpSocket or httpGet on a named port", where, p.ProbeHandler)
		return
	}
	if containerPort(spec, port) == 0 {
		t.Errorf("%s: probe port %q is no container port", where, port)
	}
}

// command splits certplane's args into the subcommand and its --flag=value
// pairs ("--flag value" is accepted too, for flags that take a value).
func command(args []string) (string, map[string]string) {
	flags := map[string]string{}
	if len(args) == 0 {
		return "", flags
	}
	for i := 1; i < len(args); i++ {
		a := strings.TrimLeft(args[i], "-")
		if k, v, ok := strings.Cut(a, "="); ok {
			flags[k] = v
		} else if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			flags[a] = args[i+1]
			i++
		} else {
			flags[a] = "true"
		}
	}
	return args[0], flags
}

// adminAddress is the admin endpoint a serve or proxy listens on.
func adminAddress(sub string, flags map[string]string) string {
	if a, ok := flags["admin-address"]; ok {
		return a
	}
	if sub == "proxy" {
		return "127.0.0.1:18002"
	}
	return "127.0.0.1:18001"
}

// TestEnvoyImageMatchesTestenv keeps one pinned Envoy for the repository:
// the one testenv's compose file runs.
func TestEnvoyImageMatchesTestenv(t *testing.T) {
	compose, err := os.ReadFile("../../testenv/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`\$\{ENVOY_IMAGE:-([^}]+)\}`).FindSubmatch(compose)
	if m == nil {
		t.Fatal("testenv/docker-compose.yml: no ${ENVOY_IMAGE:-...} default")
	}
	want := string(m[1])
	n := 0
	for _, d := range loadManifests(t).deployments {
		for _, c := range allContainers(&d.Spec.Template.Spec) {
			if strings.HasPrefix(c.Image, "envoyproxy/envoy") {
				n++
				if c.Image != want {
					t.Errorf("Deployment %s: Envoy image %s, testenv runs %s", d.Name, c.Image, want)
				}
				if !regexp.MustCompile(`:[a-z-]*v\d+\.\d+\.\d+$`).MatchString(c.Image) {
					t.Errorf("Deployment %s: Envoy image %s: pin a release (vX.Y.Z)", d.Name, c.Image)
				}
			}
		}
	}
	if n == 0 {
		t.Error("no Envoy container")
	}
}
