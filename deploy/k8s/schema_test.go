package k8s

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/yannh/kubeconform/pkg/resource"
	"github.com/yannh/kubeconform/pkg/validator"
	"sigs.k8s.io/yaml"
)

// kubernetesVersion is the release whose OpenAPI document the manifests are
// checked against: the Kubernetes of k8s.io/api in go.mod.
const kubernetesVersion = "v1.34.2"

// openAPIFiles are the OpenAPI v3 documents (api/openapi-spec/v3 of the
// kubernetes repository) of the API groups the manifests use.
var openAPIFiles = []string{"api__v1_openapi.json", "apis__apps__v1_openapi.json", "apis__policy__v1_openapi.json"}

// daprCRDs are the custom resource definitions of the Dapr kinds the
// manifests use, from the dapr module's Helm chart.
var daprCRDs = []string{"components.yaml", "configuration.yaml", "resiliency.yaml"}

// Every rendered object passes kubeconform in strict mode (unknown fields
// are errors) against JSON schemas made, without the network, from the
// Kubernetes release's own OpenAPI document and from Dapr's CRDs, the way
// kubeconform's openapi2jsonschema makes its schema registry.
func TestSchemas(t *testing.T) {
	v := newValidator(t)
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			for _, o := range render(t, dir) {
				r := v.ValidateResource(resource.Resource{Path: dir, Bytes: o.json})
				if r.Status != validator.Valid {
					t.Errorf("%s %s: %s", o.kind, o.name, describe(r))
				}
			}
		})
	}
}

// The checker refuses what the API server would: a misspelt field, a value
// of the wrong type, a field of a custom resource that its CRD lacks.
func TestSchemasRefuse(t *testing.T) {
	v := newValidator(t)
	objs := render(t, overlays[0])
	for _, tc := range []struct {
		kind, name string
		edit       func(m map[string]any)
	}{
		{"Deployment", "misspelt field", func(m map[string]any) { spec(m)["replica"] = 2 }},
		{"Deployment", "wrong type", func(m map[string]any) { spec(m)["replicas"] = "two" }},
		{"PodDisruptionBudget", "misspelt field", func(m map[string]any) { spec(m)["minAvailabe"] = 1 }},
		{"Component", "field the CRD lacks", func(m map[string]any) { spec(m)["consumerGroup"] = "x" }},
	} {
		t.Run(tc.kind+" "+tc.name, func(t *testing.T) {
			var o *object
			for i := range objs {
				if objs[i].kind == tc.kind {
					o = &objs[i]
					break
				}
			}
			if o == nil {
				t.Fatalf("no %s rendered", tc.kind)
			}
			var m map[string]any
			if err := json.Unmarshal(o.json, &m); err != nil {
				t.Fatal(err)
			}
			if r := v.ValidateResource(resource.Resource{Bytes: o.json}); r.Status != validator.Valid {
				t.Fatalf("unedited %s %s: %s", o.kind, o.name, describe(r))
			}
			tc.edit(m)
			b, _ := json.Marshal(m)
			if r := v.ValidateResource(resource.Resource{Bytes: b}); r.Status != validator.Invalid {
				t.Errorf("%s with a %s: got status %d, want invalid", o.kind, tc.name, r.Status)
			}
		})
	}
}

func spec(m map[string]any) map[string]any { return m["spec"].(map[string]any) }

func describe(r validator.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "status %d", r.Status)
	if r.Err != nil {
		fmt.Fprintf(&b, ": %v", r.Err)
	}
	for _, e := range r.ValidationErrors {
		fmt.Fprintf(&b, "; %s: %s", e.Path, e.Msg)
	}
	return b.String()
}

// newValidator writes the schemas into a directory laid out as
// kubeconform's registry expects ({kind}-{group}-{version}.json) and
// returns a strict validator over it that fails on a missing schema.
func newValidator(t *testing.T) validator.Validator {
	t.Helper()
	dir := t.TempDir()
	k8s := moduleDir(t, "k8s.io/kubernetes@"+kubernetesVersion)
	for _, f := range openAPIFiles {
		writeOpenAPISchemas(t, filepath.Join(k8s, "api", "openapi-spec", "v3", f), dir)
	}
	dapr := moduleDir(t, "github.com/dapr/dapr")
	for _, f := range daprCRDs {
		writeCRDSchemas(t, filepath.Join(dapr, "charts", "dapr", "crds", f), dir)
	}
	v, err := validator.New([]string{dir + "/{{ .ResourceKind }}{{ .KindSuffix }}.json"}, validator.Opts{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// moduleDir is the directory of a module in the module cache, downloaded
// through the module proxy if it is not there yet.
func moduleDir(t *testing.T, mod string) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", mod)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v\n%s", mod, err, out)
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		t.Fatalf("go mod download %s: %v %s", mod, err, m.Error)
	}
	return m.Dir
}

// writeOpenAPISchemas writes a standalone schema for each kind of the
// OpenAPI document at path: a reference to the kind's schema beside all of
// the document's schemas.
func writeOpenAPISchemas(t *testing.T, path, dir string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	schemas := map[string]any{}
	for name, s := range doc.Components.Schemas {
		schemas[name] = strict(s)
	}
	for name, s := range doc.Components.Schemas {
		gvks, _ := s["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			gvk := g.(map[string]any)
			standalone := map[string]any{
				"$ref":       "#/components/schemas/" + name,
				"components": map[string]any{"schemas": schemas},
			}
			writeSchema(t, dir, gvk["kind"].(string), gvk["group"].(string), gvk["version"].(string), standalone)
		}
	}
}

// writeCRDSchemas writes the schema of each version of the CRDs at path.
func writeCRDSchemas(t *testing.T, path, dir string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, part := range bytes.Split(b, []byte("\n---")) {
		var crd struct {
			Kind string `json:"kind"`
			Spec struct {
				Group string `json:"group"`
				Names struct {
					Kind string `json:"kind"`
				} `json:"names"`
				Versions []struct {
					Name   string `json:"name"`
					Schema struct {
						OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
					} `json:"schema"`
				} `json:"versions"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(part, &crd); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if crd.Kind != "CustomResourceDefinition" {
			continue
		}
		for _, v := range crd.Spec.Versions {
			writeSchema(t, dir, crd.Spec.Names.Kind, crd.Spec.Group, v.Name, strict(v.Schema.OpenAPIV3Schema))
			n++
		}
	}
	if n == 0 {
		t.Fatalf("%s: no CustomResourceDefinition", path)
	}
}

// writeSchema writes s under the name kubeconform looks up for the kind.
func writeSchema(t *testing.T, dir, kind, group, version string, s any) {
	t.Helper()
	suffix := "-" + version
	if group != "" {
		suffix = "-" + strings.ToLower(strings.Split(group, ".")[0]) + suffix
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, strings.ToLower(kind)+suffix+".json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// strict closes every object schema that lists its properties, as kubectl
// validation and openapi2jsonschema's strict mode do, except where the
// schema keeps unknown fields on purpose.
func strict(v any) any {
	switch s := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(s)+1)
		for k, x := range s {
			out[k] = strict(x)
		}
		_, props := s["properties"]
		_, extra := s["additionalProperties"]
		preserve, _ := s["x-kubernetes-preserve-unknown-fields"].(bool)
		if props && !extra && !preserve {
			out["additionalProperties"] = false
		}
		return out
	case []any:
		out := make([]any, len(s))
		for i, x := range s {
			out[i] = strict(x)
		}
		return out
	}
	return v
}
