// Package k8s holds the Kubernetes manifests of commonops (kustomize) and
// their test, in a module of their own so that the Kubernetes, kustomize
// and Dapr API types stay out of the service's dependencies.
package k8s

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	componentsv1 "github.com/dapr/dapr/pkg/apis/components/v1alpha1"
	configurationv1 "github.com/dapr/dapr/pkg/apis/configuration/v1alpha1"
	resiliencyv1 "github.com/dapr/dapr/pkg/apis/resiliency/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// overlays are the deployable trees: kubectl apply -k overlays/NAME.
var overlays = []string{"overlays/redis", "overlays/rabbitmq"}

// Each overlay renders with kustomize, and every object decodes strictly
// (an unknown or misspelt field fails) into its Kubernetes or Dapr API
// type; then the commonops rules: separate API and worker Deployments with
// Dapr annotations, probes on /healthz and /readyz, resource requests, a
// non-root user, a PodDisruptionBudget per role, the two pub/sub
// components (one consumer group for task events, one per sidecar for
// cancels) and the resiliency policy.
func TestManifests(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			objs := render(t, dir)
			var deployments []*appsv1.Deployment
			var pdbs []*policyv1.PodDisruptionBudget
			components := map[string]*componentsv1.Component{}
			resiliencies := 0
			services := 0
			for _, o := range objs {
				switch o.kind {
				case "Deployment":
					d := &appsv1.Deployment{}
					decode(t, o, d)
					deployments = append(deployments, d)
				case "Service":
					decode(t, o, &corev1.Service{})
					services++
				case "ConfigMap":
					decode(t, o, &corev1.ConfigMap{})
				case "ServiceAccount":
					decode(t, o, &corev1.ServiceAccount{})
				case "PodDisruptionBudget":
					p := &policyv1.PodDisruptionBudget{}
					decode(t, o, p)
					pdbs = append(pdbs, p)
				case "Component":
					c := &componentsv1.Component{}
					decode(t, o, c)
					components[c.Name] = c
				case "Resiliency":
					decode(t, o, &resiliencyv1.Resiliency{})
					resiliencies++
				case "Configuration":
					c := &configurationv1.Configuration{}
					decode(t, o, c)
					if c.Spec.TracingSpec == nil || c.Spec.TracingSpec.SamplingRate == "" || c.Spec.TracingSpec.SamplingRate == "0" {
						t.Errorf("Configuration %s: got no tracing samplingRate, want one above 0 (daprd passes the traceparent on only then)", c.Name)
					}
				default:
					t.Errorf("%s %s: a kind the test does not check", o.kind, o.name)
				}
			}
			checkDeployments(t, deployments, components)
			if len(pdbs) != 2 {
				t.Errorf("got %d PodDisruptionBudgets, want 2 (api, worker)", len(pdbs))
			}
			for _, p := range pdbs {
				if p.Spec.MinAvailable == nil && p.Spec.MaxUnavailable == nil {
					t.Errorf("PodDisruptionBudget %s: no minAvailable or maxUnavailable", p.Name)
				}
				if !selects(p.Spec.Selector.MatchLabels, deployments) {
					t.Errorf("PodDisruptionBudget %s: its selector %v matches no Deployment's pods", p.Name, p.Spec.Selector.MatchLabels)
				}
			}
			if services < 1 {
				t.Errorf("got %d Services, want the API's", services)
			}
			if resiliencies != 1 {
				t.Errorf("got %d Resiliency policies, want 1", resiliencies)
			}
			for name, want := range map[string]string{"pubsub": "commonops", "broadcast": "{uuid}"} {
				c := components[name]
				if c == nil {
					t.Errorf("no Dapr component %s", name)
					continue
				}
				if !strings.HasPrefix(c.Spec.Type, "pubsub.") {
					t.Errorf("component %s: type %s, want a pubsub.*", name, c.Spec.Type)
				}
				if got := metadata(c, "consumerID"); got != want {
					t.Errorf("component %s: consumerID %q, want %q", name, got, want)
				}
			}
		})
	}
}

// checkDeployments holds the Deployments to the commonops rules.
func checkDeployments(t *testing.T, ds []*appsv1.Deployment, components map[string]*componentsv1.Component) {
	t.Helper()
	roles := map[string]bool{}
	for _, d := range ds {
		pod := d.Spec.Template
		ann := pod.Annotations
		if ann["dapr.io/enabled"] != "true" || ann["dapr.io/app-id"] == "" || ann["dapr.io/config"] == "" {
			t.Errorf("Deployment %s: got Dapr annotations %v, want enabled, an app-id and a config", d.Name, ann)
		}
		if pod.Spec.SecurityContext == nil || pod.Spec.SecurityContext.RunAsNonRoot == nil || !*pod.Spec.SecurityContext.RunAsNonRoot {
			t.Errorf("Deployment %s: not runAsNonRoot", d.Name)
		}
		if len(pod.Spec.Containers) != 1 {
			t.Fatalf("Deployment %s: got %d containers, want 1 (the sidecar is injected)", d.Name, len(pod.Spec.Containers))
		}
		c := pod.Spec.Containers[0]
		i := slices.Index(c.Args, "--roles")
		if i < 0 || i+1 >= len(c.Args) {
			t.Errorf("Deployment %s: args %v name no --roles", d.Name, c.Args)
			continue
		}
		role := c.Args[i+1]
		roles[role] = true
		if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
			t.Errorf("Deployment %s: want a liveness probe GET /healthz", d.Name)
		}
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
			t.Errorf("Deployment %s: want a readiness probe GET /readyz", d.Name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			t.Errorf("Deployment %s: want cpu and memory requests, got %v", d.Name, c.Resources.Requests)
		}
		if strings.Contains(role, "worker") {
			if ann["dapr.io/app-port"] != "8081" {
				t.Errorf("Deployment %s (worker): dapr.io/app-port %q, want 8081 (the delivery listener)", d.Name, ann["dapr.io/app-port"])
			}
			j := slices.Index(c.Args, "--dapr-broadcast-pubsub")
			if j < 0 || j+1 >= len(c.Args) || components[c.Args[j+1]] == nil {
				t.Errorf("Deployment %s (worker): args %v, want --dapr-broadcast-pubsub naming a component", d.Name, c.Args)
			}
		}
	}
	if !roles["api"] || !roles["worker,maintenance"] {
		t.Errorf("got Deployments with roles %v, want api and worker,maintenance apart", roles)
	}
}

// object is one rendered manifest.
type object struct {
	kind, name string
	json       []byte
}

// render runs kustomize on dir as kubectl apply -k would.
func render(t *testing.T, dir string) []object {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var out []object
	for _, r := range m.Resources() {
		b, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("%s: %v", r.CurId(), err)
		}
		out = append(out, object{kind: r.GetKind(), name: r.GetName(), json: b})
	}
	if len(out) == 0 {
		t.Fatalf("kustomize build %s: no objects", dir)
	}
	return out
}

// decode decodes o into v, refusing unknown fields.
func decode(t *testing.T, o object, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(o.json))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Errorf("%s %s: %v", o.kind, o.name, err)
	}
}

// selects reports whether labels select the pods of one of ds.
func selects(labels map[string]string, ds []*appsv1.Deployment) bool {
	for _, d := range ds {
		ok := len(labels) > 0
		for k, v := range labels {
			if d.Spec.Template.Labels[k] != v {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// metadata is the value of the component's metadata item name.
func metadata(c *componentsv1.Component, name string) string {
	for _, m := range c.Spec.Metadata {
		if m.Name == name {
			s := string(m.Value.Raw)
			if uq := strings.Trim(s, `"`); uq != s {
				return uq
			}
			return fmt.Sprint(s)
		}
	}
	return ""
}
