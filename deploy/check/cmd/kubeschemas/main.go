// Command kubeschemas writes the JSON schemas kubeconform validates manifests
// against, offline: from the Kubernetes OpenAPI (v2) document that the
// k8s.io/kubernetes module ships (api/openapi-spec/swagger.json) and from
// CustomResourceDefinition files (the Prometheus Operator's ServiceMonitor),
// both fetched with `go mod download`. kubeconform's default schemas come from
// GitHub, which CI cannot reach.
//
// Each schema is standalone (every $ref inlined) and strict (an object with
// listed properties refuses any other), like kubeconform's
// "standalone-strict" schemas, and is named as kubeconform's
// {{ .ResourceKind }}{{ .KindSuffix }}.json template expects
// (statefulset-apps-v1.json). Only the kinds the given manifests use are
// written, which keeps it fast: a full set would be hundreds of megabytes.
//
//	kubeschemas -swagger swagger.json [-crd servicemonitors.yaml]… -out DIR manifest.yaml…
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// schema is a JSON schema (or OpenAPI schema object) as decoded JSON.
type schema = map[string]any

// quantity and intOrString are the OpenAPI definitions whose JSON form is a
// string or a number, although the document says "type: string".
const (
	quantity    = "io.k8s.apimachinery.pkg.api.resource.Quantity"
	intOrString = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
)

type crdFlags []string

func (c *crdFlags) String() string     { return strings.Join(*c, ",") }
func (c *crdFlags) Set(v string) error { *c = append(*c, v); return nil }

func main() {
	swagger := flag.String("swagger", "", "Kubernetes OpenAPI v2 document (api/openapi-spec/swagger.json)")
	out := flag.String("out", "", "directory to write the schemas to")
	var crds crdFlags
	flag.Var(&crds, "crd", "a CustomResourceDefinition YAML file (repeatable)")
	flag.Parse()
	if *swagger == "" || *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: kubeschemas -swagger FILE [-crd FILE]… -out DIR MANIFEST…")
		os.Exit(2)
	}
	if err := run(*swagger, crds, *out, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "kubeschemas:", err)
		os.Exit(1)
	}
}

func run(swaggerPath string, crdPaths []string, outDir string, manifests []string) error {
	kinds, err := manifestKinds(manifests)
	if err != nil {
		return err
	}
	all, err := loadSwagger(swaggerPath)
	if err != nil {
		return err
	}
	for _, p := range crdPaths {
		crdSchemas, err := loadCRD(p)
		if err != nil {
			return err
		}
		for k, v := range crdSchemas {
			all[k] = v
		}
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	var missing []string
	for _, file := range kinds {
		s, ok := all[file]
		if !ok {
			missing = append(missing, file)
			continue
		}
		data, err := json.Marshal(s())
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(outDir, file), data, 0o644); err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("no schema for %s in the OpenAPI document or the CRDs", strings.Join(missing, ", "))
	}
	return nil
}

// schemaFile is kubeconform's name for the schema of kind at apiVersion:
// lower-case kind, then "-" and the group's first label (if any), then "-" and
// the version.
func schemaFile(kind, apiVersion string) string {
	group, version, ok := strings.Cut(apiVersion, "/")
	if !ok {
		group, version = "", apiVersion
	}
	suffix := "-" + strings.ToLower(version)
	if group != "" {
		label, _, _ := strings.Cut(group, ".")
		suffix = "-" + strings.ToLower(label) + suffix
	}
	return strings.ToLower(kind) + suffix + ".json"
}

// manifestKinds lists the schema files the manifests' documents need.
func manifestKinds(paths []string) ([]string, error) {
	seen := map[string]bool{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc struct {
				APIVersion string `yaml:"apiVersion"`
				Kind       string `yaml:"kind"`
			}
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %v", p, err)
			}
			if doc.Kind == "" {
				continue // an empty document between two ---
			}
			seen[schemaFile(doc.Kind, doc.APIVersion)] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

// loadSwagger maps each kind's schema file name to a function building its
// standalone strict schema from the document's definitions.
func loadSwagger(path string) (map[string]func() schema, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Definitions map[string]schema `json:"definitions"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if len(doc.Definitions) == 0 {
		return nil, fmt.Errorf("%s: no definitions", path)
	}
	out := map[string]func() schema{}
	for name, def := range doc.Definitions {
		gvks, _ := def["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			gvk, _ := g.(map[string]any)
			group, _ := gvk["group"].(string)
			version, _ := gvk["version"].(string)
			kind, _ := gvk["kind"].(string)
			apiVersion := version
			if group != "" {
				apiVersion = group + "/" + version
			}
			file := schemaFile(kind, apiVersion)
			if _, dup := out[file]; dup {
				continue
			}
			out[file] = func() schema {
				e := expander{defs: doc.Definitions}
				return e.expand(schema{"$ref": "#/definitions/" + name}, nil)
			}
		}
	}
	return out, nil
}

// expander inlines $refs of an OpenAPI v2 document.
type expander struct {
	defs map[string]schema
}

// expand returns s as a standalone strict JSON schema. stack holds the
// definitions being expanded, so a recursive type (JSONSchemaProps) is cut off
// with an open schema instead of looping.
func (e expander) expand(s schema, stack []string) schema {
	if ref, ok := s["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/definitions/")
		switch name {
		case quantity:
			return schema{"oneOf": []any{schema{"type": "string"}, schema{"type": "number"}}}
		case intOrString:
			return schema{"oneOf": []any{schema{"type": "string"}, schema{"type": "integer"}}}
		}
		for _, n := range stack {
			if n == name {
				return schema{}
			}
		}
		def, ok := e.defs[name]
		if !ok {
			return schema{} // a dangling reference: accept rather than invent
		}
		return e.expand(def, append(stack, name))
	}
	return strictify(s, func(sub schema) schema { return e.expand(sub, stack) })
}

// strictify copies the validating keywords of s, sub-schemas rewritten by sub,
// and closes objects that list their properties. Descriptions, formats and
// OpenAPI extensions are dropped (formats such as int32 or date-time are not
// checked by the API server's decoder either).
func strictify(s schema, sub func(schema) schema) schema {
	if s["format"] == "int-or-string" || s["x-kubernetes-int-or-string"] == true {
		return schema{"oneOf": []any{schema{"type": "string"}, schema{"type": "integer"}}}
	}
	out := schema{}
	for _, k := range []string{"type", "required", "enum", "minimum", "maximum", "minItems", "maxItems", "minLength", "maxLength", "pattern", "nullable"} {
		if v, ok := s[k]; ok {
			out[k] = v
		}
	}
	if props, ok := s["properties"].(map[string]any); ok {
		p := make(map[string]any, len(props))
		for name, v := range props {
			if vs, ok := v.(map[string]any); ok {
				p[name] = sub(vs)
			}
		}
		out["properties"] = p
	}
	if items, ok := s["items"].(map[string]any); ok {
		out["items"] = sub(items)
	}
	switch ap := s["additionalProperties"].(type) {
	case map[string]any:
		out["additionalProperties"] = sub(ap)
	case bool:
		out["additionalProperties"] = ap
	}
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		if list, ok := s[k].([]any); ok {
			l := make([]any, 0, len(list))
			for _, v := range list {
				if vs, ok := v.(map[string]any); ok {
					l = append(l, sub(vs))
				}
			}
			out[k] = l
		}
	}
	if not, ok := s["not"].(map[string]any); ok {
		out["not"] = sub(not)
	}
	// OpenAPI's nullable becomes a JSON-schema null type.
	if out["nullable"] == true {
		if t, ok := out["type"].(string); ok {
			out["type"] = []any{t, "null"}
		}
	}
	delete(out, "nullable")
	_, hasProps := out["properties"]
	_, hasAP := out["additionalProperties"]
	if hasProps && !hasAP && s["x-kubernetes-preserve-unknown-fields"] != true {
		out["additionalProperties"] = false
	}
	return out
}

// loadCRD maps each served version of a CustomResourceDefinition to its strict
// schema (its openAPIV3Schema is already standalone).
func loadCRD(path string) (map[string]func() schema, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var crd struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Group string `yaml:"group"`
			Names struct {
				Kind string `yaml:"kind"`
			} `yaml:"names"`
			Versions []struct {
				Name   string `yaml:"name"`
				Served bool   `yaml:"served"`
				Schema struct {
					OpenAPIV3Schema map[string]any `yaml:"openAPIV3Schema"`
				} `yaml:"schema"`
			} `yaml:"versions"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(data, &crd); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if crd.Kind != "CustomResourceDefinition" || crd.Spec.Names.Kind == "" {
		return nil, fmt.Errorf("%s: not a CustomResourceDefinition", path)
	}
	out := map[string]func() schema{}
	for _, v := range crd.Spec.Versions {
		if !v.Served || v.Schema.OpenAPIV3Schema == nil {
			continue
		}
		root := v.Schema.OpenAPIV3Schema
		out[schemaFile(crd.Spec.Names.Kind, crd.Spec.Group+"/"+v.Name)] = func() schema {
			var walk func(schema) schema
			walk = func(s schema) schema { return strictify(s, walk) }
			return walk(root)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no served version with a schema", path)
	}
	return out, nil
}
