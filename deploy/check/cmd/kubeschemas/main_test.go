package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSchemaFile(t *testing.T) {
	tests := []struct{ kind, apiVersion, want string }{
		{"Service", "v1", "service-v1.json"},
		{"StatefulSet", "apps/v1", "statefulset-apps-v1.json"},
		{"PodDisruptionBudget", "policy/v1", "poddisruptionbudget-policy-v1.json"},
		{"ServiceMonitor", "monitoring.coreos.com/v1", "servicemonitor-monitoring-v1.json"},
	}
	for _, tt := range tests {
		if got := schemaFile(tt.kind, tt.apiVersion); got != tt.want {
			t.Errorf("schemaFile(%q, %q) = %q, want %q (kubeconform's {{ .ResourceKind }}{{ .KindSuffix }}.json)", tt.kind, tt.apiVersion, got, tt.want)
		}
	}
}

// A miniature OpenAPI document: a kind whose spec references a struct, an
// IntOrString, a Quantity and a recursive type.
const swagger = `{"definitions": {
  "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string"},
  "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
  "x.Node": {"type": "object", "properties": {"child": {"$ref": "#/definitions/x.Node"}}},
  "x.Spec": {"description": "dropped", "type": "object", "required": ["port"], "properties": {
    "port": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"},
    "size": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"},
    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    "tree": {"$ref": "#/definitions/x.Node"},
    "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}}}},
  "x.Widget": {"type": "object", "x-kubernetes-group-version-kind": [{"group": "example.com", "version": "v1", "kind": "Widget"}],
    "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "spec": {"$ref": "#/definitions/x.Spec"}}}
}}`

func TestExpandIsStandaloneAndStrict(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "swagger.json")
	os.WriteFile(path, []byte(swagger), 0o644)
	all, err := loadSwagger(path)
	if err != nil {
		t.Fatal(err)
	}
	build, ok := all["widget-example-v1.json"]
	if !ok {
		t.Fatalf("kinds %v, want widget-example-v1.json", all)
	}
	got := build()
	data, _ := json.Marshal(got)
	if strings.Contains(string(data), "$ref") || strings.Contains(string(data), "dropped") {
		t.Errorf("schema keeps a $ref or a description: %s", data)
	}
	spec := got["properties"].(map[string]any)["spec"].(schema)
	props := spec["properties"].(map[string]any)
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"root closed", got["additionalProperties"], false},
		{"spec closed", spec["additionalProperties"], false},
		{"required kept", spec["required"], []any{"port"}},
		{"int-or-string", props["port"], schema{"oneOf": []any{schema{"type": "string"}, schema{"type": "integer"}}}},
		{"quantity", props["size"], schema{"oneOf": []any{schema{"type": "string"}, schema{"type": "number"}}}},
		{"maps stay maps", props["labels"], schema{"type": "object", "additionalProperties": schema{"type": "string"}}},
		{"array items closed", props["items"].(schema)["items"].(schema)["additionalProperties"], false},
		{"recursion cut open", props["tree"].(schema)["properties"].(map[string]any)["child"], schema{}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestRunWritesOnlyTheManifestsKindsAndRefusesUnknownOnes(t *testing.T) {
	dir := t.TempDir()
	sw := filepath.Join(dir, "swagger.json")
	os.WriteFile(sw, []byte(swagger), 0o644)
	crd := filepath.Join(dir, "crd.yaml")
	os.WriteFile(crd, []byte(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor}
  versions:
    - name: v1
      served: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                port: {x-kubernetes-int-or-string: true}
                extra: {type: object, x-kubernetes-preserve-unknown-fields: true, properties: {a: {type: string}}}
`), 0o644)
	manifest := filepath.Join(dir, "m.yaml")
	os.WriteFile(manifest, []byte("apiVersion: example.com/v1\nkind: Widget\n---\n---\napiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\n"), 0o644)
	out := filepath.Join(dir, "out")
	if err := run(sw, []string{crd}, out, []string{manifest}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(out)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"servicemonitor-monitoring-v1.json", "widget-example-v1.json"}; !reflect.DeepEqual(names, want) {
		t.Errorf("wrote %v, want %v", names, want)
	}
	data, _ := os.ReadFile(filepath.Join(out, "servicemonitor-monitoring-v1.json"))
	var sm schema
	json.Unmarshal(data, &sm)
	spec := sm["properties"].(map[string]any)["spec"].(map[string]any)
	if spec["additionalProperties"] != false {
		t.Errorf("CRD spec not closed: %v", spec)
	}
	extra := spec["properties"].(map[string]any)["extra"].(map[string]any)
	if _, closed := extra["additionalProperties"]; closed {
		t.Errorf("x-kubernetes-preserve-unknown-fields closed: %v", extra)
	}

	os.WriteFile(manifest, []byte("apiVersion: v1\nkind: Gadget\n"), 0o644)
	if err := run(sw, nil, out, []string{manifest}); err == nil || !strings.Contains(err.Error(), "gadget-v1.json") {
		t.Errorf("unknown kind: err = %v, want one naming gadget-v1.json", err)
	}
}
