// Command render renders a Helm chart the way `helm template` does, for the chart's tests on
// machines without a helm binary: the same engine (Go text/template with sprig's functions,
// minus the ones helm removes) and helm's own additions that the chart uses (include, tpl,
// toYaml, fromYaml, toJson, fromJson, required, .Files.Get, .Release, .Chart, .Capabilities).
//
// Usage: render [-show-values] [-name R] [-namespace N] [-f values.yaml]... CHART_DIR
//
// Values are merged like helm's (the chart's values.yaml, then each -f file; a null removes a
// key) and, like helm's, hold every number as a float64 (helm reads values through JSON).
// -show-values prints the merged values as JSON instead of rendering, so that the tests can
// check them against values.schema.json as helm would.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v2"
)

type valueFiles []string

func (v *valueFiles) String() string     { return strings.Join(*v, ",") }
func (v *valueFiles) Set(s string) error { *v = append(*v, s); return nil }

// Files is .Files: every file of the chart outside templates/, by its chart-relative path.
type Files map[string][]byte

// Get returns a file's content, or "" when there is none (as helm's does).
func (f Files) Get(name string) string { return string(f[name]) }

func main() {
	var files valueFiles
	name := flag.String("name", "notify", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	showValues := flag.Bool("show-values", false, "print the merged values as JSON")
	flag.Var(&files, "f", "values file (repeatable, later wins)")
	flag.Parse()
	if flag.NArg() != 1 {
		fail(fmt.Errorf("usage: render [flags] CHART_DIR"))
	}
	chartDir := flag.Arg(0)
	values, err := mergedValues(chartDir, files)
	if err != nil {
		fail(err)
	}
	if *showValues {
		out, err := json.MarshalIndent(values, "", "  ")
		if err != nil {
			fail(err)
		}
		fmt.Println(string(out))
		return
	}
	out, err := render(chartDir, values, *name, *namespace)
	if err != nil {
		fail(err)
	}
	fmt.Print(out)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "Error:", err)
	os.Exit(1)
}

// readYAML reads a YAML file into JSON-compatible values (maps with string keys, float64
// numbers): what helm's sigs.k8s.io/yaml produces.
func readYAML(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseYAML(data, path)
}

func parseYAML(data []byte, source string) (map[string]interface{}, error) {
	var raw interface{}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	converted, err := jsonCompatible(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	encoded, err := json.Marshal(converted)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	out := map[string]interface{}{}
	if string(encoded) == "null" {
		return out, nil
	}
	if err := json.Unmarshal(encoded, &out); err != nil {
		return nil, fmt.Errorf("%s: not a mapping: %w", source, err)
	}
	return out, nil
}

func jsonCompatible(v interface{}) (interface{}, error) {
	switch t := v.(type) {
	case map[interface{}]interface{}:
		m := map[string]interface{}{}
		for k, item := range t {
			key, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("non-string key %v", k)
			}
			c, err := jsonCompatible(item)
			if err != nil {
				return nil, err
			}
			m[key] = c
		}
		return m, nil
	case []interface{}:
		out := make([]interface{}, len(t))
		for i, item := range t {
			c, err := jsonCompatible(item)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	default:
		return v, nil
	}
}

func mergedValues(chartDir string, files []string) (map[string]interface{}, error) {
	values, err := readYAML(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return nil, err
	}
	for _, file := range files {
		override, err := readYAML(file)
		if err != nil {
			return nil, err
		}
		coalesce(values, override)
	}
	return values, nil
}

// coalesce merges src into dst like helm: maps deep, anything else replaced, null deletes.
func coalesce(dst, src map[string]interface{}) {
	for key, value := range src {
		if value == nil {
			delete(dst, key)
			continue
		}
		srcMap, srcIsMap := value.(map[string]interface{})
		dstMap, dstIsMap := dst[key].(map[string]interface{})
		if srcIsMap && dstIsMap {
			coalesce(dstMap, srcMap)
			continue
		}
		dst[key] = value
	}
}

func chartFiles(chartDir string) (Files, error) {
	files := Files{}
	err := filepath.Walk(chartDir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(chartDir, path)
		if info.IsDir() {
			if rel == "templates" {
				return filepath.SkipDir
			}
			return nil
		}
		data, err := os.ReadFile(path) // follows a symlink, as helm's loader does
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = data
		return nil
	})
	return files, err
}

func chartMetadata(chartDir string) (map[string]interface{}, error) {
	raw, err := readYAML(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return nil, err
	}
	// helm exposes chart.Metadata's Go field names.
	meta := map[string]interface{}{}
	for key, value := range raw {
		field := strings.ToUpper(key[:1]) + key[1:]
		if key == "apiVersion" {
			field = "APIVersion"
		}
		meta[field] = value
	}
	return meta, nil
}

func render(chartDir string, values map[string]interface{}, name, namespace string) (string, error) {
	meta, err := chartMetadata(chartDir)
	if err != nil {
		return "", err
	}
	files, err := chartFiles(chartDir)
	if err != nil {
		return "", err
	}
	chartName, _ := meta["Name"].(string)
	root := template.New("chart")
	funcs := functions(root)
	root.Funcs(funcs).Option("missingkey=zero")

	paths, err := filepath.Glob(filepath.Join(chartDir, "templates", "*"))
	if err != nil {
		return "", err
	}
	sort.Strings(paths)
	var names []string
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		templateName := chartName + "/templates/" + filepath.Base(path)
		if _, err := root.New(templateName).Parse(string(data)); err != nil {
			return "", err
		}
		names = append(names, templateName)
	}
	var out strings.Builder
	for _, templateName := range names {
		base := filepath.Base(templateName)
		if strings.HasPrefix(base, "_") || base == "NOTES.txt" {
			continue
		}
		data := map[string]interface{}{
			"Values": values,
			"Chart":  meta,
			"Files":  files,
			"Release": map[string]interface{}{
				"Name": name, "Namespace": namespace, "Service": "Helm",
				"IsInstall": true, "IsUpgrade": false, "Revision": 1,
			},
			"Capabilities": map[string]interface{}{
				"KubeVersion": map[string]interface{}{"Version": "v1.30.0", "Major": "1", "Minor": "30"},
			},
			"Template": map[string]interface{}{
				"Name": templateName, "BasePath": chartName + "/templates",
			},
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, templateName, data); err != nil {
			return "", err
		}
		// helm's engine does the same with missingkey=zero's placeholder.
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		for _, doc := range strings.Split(text, "\n---") {
			if strings.TrimSpace(strings.TrimPrefix(doc, "---")) == "" {
				continue
			}
			doc = strings.TrimPrefix(strings.TrimLeft(doc, "\n"), "---\n")
			fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", templateName, strings.TrimRight(doc, "\n "))
		}
	}
	return out.String(), nil
}

func functions(root *template.Template) template.FuncMap {
	funcs := sprig.TxtFuncMap()
	// helm removes these: a chart must render the same everywhere.
	delete(funcs, "env")
	delete(funcs, "expandenv")
	funcs["toYaml"] = func(v interface{}) string {
		data, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(data), "\n")
	}
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		m, err := parseYAML([]byte(s), "fromYaml")
		if err != nil {
			return map[string]interface{}{"Error": err.Error()}
		}
		return m
	}
	funcs["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			return map[string]interface{}{"Error": err.Error()}
		}
		return m
	}
	funcs["toJson"] = func(v interface{}) string {
		data, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(data)
	}
	funcs["required"] = func(message string, v interface{}) (interface{}, error) {
		if v == nil {
			return nil, fmt.Errorf("%s", message)
		}
		if s, ok := v.(string); ok && s == "" {
			return nil, fmt.Errorf("%s", message)
		}
		return v, nil
	}
	funcs["fail"] = func(message string) (string, error) {
		return "", fmt.Errorf("%s", message)
	}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		clone, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err := clone.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			return "", err
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	return funcs
}
