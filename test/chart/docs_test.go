package chart

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// schemaLeaves lists the values the schema defines, as dotted paths: objects with fixed
// properties are walked into, free-form maps and lists are values of their own.
func schemaLeaves(prefix string, schema map[string]any, out map[string]bool) {
	properties, _ := schema["properties"].(map[string]any)
	for name, sub := range properties {
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		sub := sub.(map[string]any)
		if _, nested := sub["properties"]; nested && sub["additionalProperties"] == false {
			schemaLeaves(path, sub, out)
			continue
		}
		out[path] = true
	}
}

func valuesLeaves(prefix string, values map[string]any, schema map[string]any, out map[string]bool) {
	properties, _ := schema["properties"].(map[string]any)
	for name, value := range values {
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		sub, _ := properties[name].(map[string]any)
		if nested, ok := value.(map[string]any); ok && sub != nil && sub["additionalProperties"] == false {
			valuesLeaves(path, nested, sub, out)
			continue
		}
		out[path] = true
	}
}

// TestValuesDocumented checks that values.yaml, values.schema.json and the README's values
// table name the same values: a value added to one must be added to all three.
func TestValuesDocumented(t *testing.T) {
	var schema map[string]any
	data, err := os.ReadFile(filepath.Join(chartDir(), "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	inSchema := map[string]bool{}
	schemaLeaves("", schema, inSchema)
	delete(inSchema, "global") // Helm's, not the chart's

	var values map[string]any
	data, err = os.ReadFile(filepath.Join(chartDir(), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	inValues := map[string]bool{}
	valuesLeaves("", values, schema, inValues)

	readme, err := os.ReadFile(filepath.Join(chartDir(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, found := strings.Cut(string(readme), "\n## Values\n")
	if !found {
		t.Fatal("README.md has no ## Values section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	inReadme := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Za-z0-9.]+)` \\|").FindAllStringSubmatch(table, -1) {
		inReadme[m[1]] = true
	}

	missing := func(what string, from, in map[string]bool, where string) {
		var names []string
		for name := range from {
			if !in[name] {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		for _, name := range names {
			t.Errorf("%s %s is not in %s", what, name, where)
		}
	}
	missing("value", inValues, inSchema, "values.schema.json")
	missing("value", inSchema, inValues, "values.yaml (give every value a default there)")
	missing("value", inSchema, inReadme, "README.md's values table")
	missing("README.md documents", inReadme, inSchema, "values.schema.json")
}
