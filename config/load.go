package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts the name of every environment override: the key
// billing.grace is CREDITGATE_BILLING_GRACE.
const EnvPrefix = "CREDITGATE_"

// Load reads the YAML file at path ("" = none: defaults only), applies
// CREDITGATE_* environment overrides and validates the result. An invalid
// configuration yields a *Problems listing every problem; an unreadable file
// yields a plain error.
func Load(path string) (*Config, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	return LoadBytes(data, environ())
}

// LoadBytes is Load on YAML held in memory, with env standing in for the process
// environment (nil: no overrides). Empty environment values are ignored, as
// viper does.
func LoadBytes(data []byte, env map[string]string) (*Config, error) {
	cfg, problems, fromEnv := decode(data, env)
	failed := make(map[string]bool, len(problems))
	for _, p := range problems {
		failed[p.Key] = true
	}
	// A key whose value did not parse still holds its default; checks of that
	// default would only confuse. So would checks of a file that is not YAML (a
	// problem of the whole file, key ""): every key would hold its default.
	if !failed[""] {
		for _, p := range cfg.validate() {
			if !failed[p.Key] {
				problems = append(problems, p)
			}
		}
	}
	// Say where a bad value came from when it was not the file.
	for i, p := range problems {
		base, _, _ := strings.Cut(p.Key, "[")
		if name, ok := fromEnv[base]; ok {
			problems[i].Message += " (from " + name + ")"
		}
	}
	if len(problems) > 0 {
		problems.sort()
		return nil, &problems
	}
	return cfg, nil
}

func environ() map[string]string {
	env := make(map[string]string)
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix) {
			env[k] = v
		}
	}
	return env
}

// field is one key of the schema, found by reflection over Config's yaml tags.
type field struct {
	key   string // dotted path, e.g. "billing.auto_recharge.webhook.url"
	index []int  // reflect.Value.FieldByIndex path from Config
	// section is true for maps and optional sections (billing.tiers,
	// pricing.models, pricing.aliases, pricing.default): their keys are chosen by
	// the operator (model names hold dots and capitals), so they are decoded from
	// the YAML directly and have no environment override.
	section bool
}

// schema lists every key of Config in declaration order.
var schema = sync.OnceValue(func() []field {
	var out []field
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := f.Tag.Get("yaml")
			if name == "" || !f.IsExported() {
				continue
			}
			key := joinKey(prefix, name)
			idx := append(append([]int(nil), index...), i)
			switch {
			case isValueType(f.Type):
				out = append(out, field{key: key, index: idx})
			case f.Type.Kind() == reflect.Struct:
				walk(f.Type, key, idx)
			default:
				out = append(out, field{key: key, index: idx, section: true})
			}
		}
	}
	walk(reflect.TypeFor[Config](), "", nil)
	return out
})

// EnvName is the environment variable that overrides key: "billing.grace" →
// "CREDITGATE_BILLING_GRACE".
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

func joinKey(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// decode layers defaults, the YAML document and the environment into a Config.
// The problems it returns are those of parsing; validation is separate. fromEnv
// maps each key set by the environment to its variable's name.
//
// Viper holds the layers of every plain key (default < file < environment). Its
// own YAML reading is bypassed: the document is walked here against the schema,
// so that unknown keys are reported with their full path, numbers keep their
// literal text (money is exact), and the operator-named sections (model names
// with dots and capitals) are decoded without viper's key folding. The
// environment comes from the env map (Load passes the process's) rather than
// viper's AutomaticEnv, so LoadBytes and its tests control it exactly.
func decode(data []byte, env map[string]string) (cfg *Config, problems Problems, fromEnv map[string]string) {
	cfg = Default()
	d := &decoder{file: make(map[string]any)}
	if root := d.parse(data); root != nil {
		d.walk(root, "", reflect.ValueOf(cfg).Elem(), true)
	}

	v := viper.New()
	rv := reflect.ValueOf(cfg).Elem()
	for _, f := range schema() {
		if !f.section {
			v.SetDefault(f.key, formatValue(rv.FieldByIndex(f.index)))
		}
	}
	if err := v.MergeConfigMap(nest(d.file)); err != nil {
		d.add("", err.Error())
	}
	fromEnv = make(map[string]string)
	known := make(map[string]bool)
	for _, f := range schema() {
		if f.section {
			continue
		}
		name := EnvName(f.key)
		known[name] = true
		if val := env[name]; val != "" {
			v.Set(f.key, val)
			fromEnv[f.key] = name
		}
	}
	for _, f := range schema() {
		if f.section {
			continue
		}
		if err := setValue(rv.FieldByIndex(f.index), v.Get(f.key)); err != nil {
			d.add(f.key, err.Error())
		}
	}

	explicit := func(key string) bool {
		_, inFile := d.file[key]
		_, inEnv := fromEnv[key]
		return inFile || inEnv
	}
	if !explicit("billing.auto_recharge.min_amount") {
		cfg.Billing.AutoRecharge.MinAmount = cfg.Billing.MinPurchase
	}
	if len(cfg.Redis.ClusterAddrs) > 0 && !explicit("redis.url") {
		cfg.Redis.URL = "" // choosing a cluster drops the default single-node URL
	}
	for name := range env {
		// CREDITGATE_TEST_* configure the test helpers, not creditgate.
		if strings.HasPrefix(name, EnvPrefix) && !known[name] && !strings.HasPrefix(name, EnvPrefix+"TEST_") {
			cfg.strayEnv = append(cfg.strayEnv, name)
		}
	}
	sort.Strings(cfg.strayEnv)
	return cfg, d.problems, fromEnv
}

// nest turns {"a.b": x} into {"a": {"b": x}} for viper.
func nest(flat map[string]any) map[string]any {
	out := make(map[string]any)
	for key, val := range flat {
		parts := strings.Split(key, ".")
		m := out
		for _, p := range parts[:len(parts)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = make(map[string]any)
				m[p] = sub
			}
			m = sub
		}
		m[parts[len(parts)-1]] = val
	}
	return out
}

// maxNodes bounds the YAML nodes visited, aliases included, so a small document
// of nested aliases cannot make loading take exponential time.
const maxNodes = 100_000

// decoder walks a YAML document against the schema.
type decoder struct {
	problems Problems
	// file holds the plain keys the document sets: dotted key → literal string,
	// or []string for lists.
	file    map[string]any
	visited int
}

func (d *decoder) add(key, msg string) {
	d.problems = append(d.problems, Problem{Key: key, Message: msg})
}

// parse reads one YAML document; nil when it is empty or unusable.
func (d *decoder) parse(data []byte) *yaml.Node {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		d.add("", "invalid YAML: "+strings.TrimPrefix(err.Error(), "yaml: "))
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		d.add("", "the file must hold a single YAML document (found a second '---' or trailing content)")
	}
	root := d.resolve(&doc)
	if root == nil || isNull(root) {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		d.add("", fmt.Sprintf("the file must be a mapping of keys such as \"listen:\", got %s (line %d)", kindName(root), root.Line))
		return nil
	}
	return root
}

// resolve follows documents and aliases to the node that holds a value, counting
// visits; nil once the budget is spent.
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for hops := 0; n != nil && (n.Kind == yaml.DocumentNode || n.Kind == yaml.AliasNode); hops++ {
		if hops > 100 {
			return nil
		}
		if n.Kind == yaml.DocumentNode {
			if len(n.Content) == 0 {
				return nil
			}
			n = n.Content[0]
		} else {
			n = n.Alias
		}
	}
	if n == nil {
		return nil
	}
	d.visited++
	if d.visited == maxNodes {
		d.add("", fmt.Sprintf("the document is too complex (more than %d values with aliases expanded)", maxNodes))
	}
	if d.visited >= maxNodes {
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", truncate(n.Value, 40))
	}
	return "an empty value"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// walk decodes n into v, whose key is path. static is true outside the
// operator-named sections: plain values there are collected in d.file for
// viper; inside sections they are set directly.
func (d *decoder) walk(n *yaml.Node, path string, v reflect.Value, static bool) {
	n = d.resolve(n)
	if n == nil || isNull(n) {
		return // null leaves the default in place
	}
	t := v.Type()
	switch {
	case isValueType(t):
		raw, ok := d.value(n, path, t)
		if !ok {
			return
		}
		if static {
			d.file[path] = raw
		} else if err := setValue(v, raw); err != nil {
			d.add(path, err.Error())
		}
	case t.Kind() == reflect.Struct:
		if !d.expectMapping(n, path) {
			return
		}
		for _, p := range d.pairs(n, path) {
			i, ok := fieldIndex(t, p.key)
			if !ok {
				d.add(joinKey(path, p.key), unknownKeyMessage(t, path, p.key, p.line))
				continue
			}
			d.walk(p.val, joinKey(path, p.key), v.Field(i), static)
		}
	case t.Kind() == reflect.Map:
		if !d.expectMapping(n, path) {
			return
		}
		m := reflect.MakeMap(t)
		for _, p := range d.pairs(n, path) {
			if p.key == "" {
				d.add(path, fmt.Sprintf("empty name (line %d)", p.line))
				continue
			}
			elem := reflect.New(t.Elem()).Elem()
			d.walk(p.val, joinKey(path, p.key), elem, false)
			m.SetMapIndex(reflect.ValueOf(p.key), elem)
		}
		v.Set(m) // a section in the file replaces the default table
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct:
		if !d.expectMapping(n, path) {
			return
		}
		nv := reflect.New(t.Elem())
		d.walk(n, path, nv.Elem(), false)
		v.Set(nv)
	default:
		d.add(path, fmt.Sprintf("config: no decoder for %s", t)) // a schema bug, caught by tests
	}
}

func (d *decoder) expectMapping(n *yaml.Node, path string) bool {
	if n.Kind == yaml.MappingNode {
		return true
	}
	d.add(path, fmt.Sprintf("expected a mapping of keys, got %s (line %d)", kindName(n), n.Line))
	return false
}

// value reads the literal of a plain value: a string, or []string for a list
// ([]AdminToken for admin.tokens).
func (d *decoder) value(n *yaml.Node, path string, t reflect.Type) (any, bool) {
	if t == adminTokensType {
		return d.adminTokens(n, path)
	}
	if t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode {
		list := make([]string, 0, len(n.Content))
		ok := true
		for i, item := range n.Content {
			item = d.resolve(item)
			if item == nil {
				return nil, false
			}
			if item.Kind != yaml.ScalarNode || isNull(item) {
				d.add(fmt.Sprintf("%s[%d]", path, i), fmt.Sprintf("expected a string, got %s (line %d)", kindName(item), item.Line))
				ok = false
				continue
			}
			list = append(list, item.Value)
		}
		return list, ok
	}
	if n.Kind != yaml.ScalarNode {
		d.add(path, fmt.Sprintf("expected a single value, got %s (line %d)", kindName(n), n.Line))
		return nil, false
	}
	return n.Value, true
}

// adminTokens reads admin.tokens: a list whose items are bare strings or
// {token, name, scopes} mappings (unknown keys are problems, as anywhere).
func (d *decoder) adminTokens(n *yaml.Node, path string) (any, bool) {
	if n.Kind == yaml.ScalarNode {
		list, err := toList(n.Value) // one string, as in the environment
		if err != nil {
			d.add(path, err.Error())
			return nil, false
		}
		return BareTokens(list...), true
	}
	if n.Kind != yaml.SequenceNode {
		d.add(path, fmt.Sprintf("expected a list of tokens, got %s (line %d)", kindName(n), n.Line))
		return nil, false
	}
	out := make([]AdminToken, 0, len(n.Content))
	ok := true
	for i, item := range n.Content {
		key := fmt.Sprintf("%s[%d]", path, i)
		item = d.resolve(item)
		if item == nil {
			return nil, false
		}
		switch {
		case item.Kind == yaml.ScalarNode && !isNull(item):
			out = append(out, AdminToken{Token: item.Value})
		case item.Kind == yaml.MappingNode:
			var tok AdminToken
			d.walk(item, key, reflect.ValueOf(&tok).Elem(), false)
			out = append(out, tok)
		default:
			d.add(key, fmt.Sprintf("expected a string (a token) or a mapping {token, name, scopes}, got %s (line %d)", kindName(item), item.Line))
			ok = false
		}
	}
	return out, ok
}

type pair struct {
	key  string
	line int
	val  *yaml.Node
}

// pairs lists a mapping's entries, expanding YAML merge keys ("<<: *base");
// keys written in the mapping override merged ones. Duplicates are problems.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	var own, merged []pair
	seen := make(map[string]bool)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := d.resolve(n.Content[i])
		if k == nil {
			return nil
		}
		if k.Kind != yaml.ScalarNode {
			d.add(path, fmt.Sprintf("a key must be a plain name, got %s (line %d)", kindName(k), k.Line))
			continue
		}
		if k.ShortTag() == "!!merge" {
			merged = append(merged, d.mergePairs(n.Content[i+1], path)...)
			continue
		}
		if seen[k.Value] {
			d.add(joinKey(path, k.Value), fmt.Sprintf("duplicate key (line %d)", k.Line))
			continue
		}
		seen[k.Value] = true
		own = append(own, pair{key: k.Value, line: k.Line, val: n.Content[i+1]})
	}
	for _, p := range merged {
		if !seen[p.key] {
			seen[p.key] = true
			own = append(own, p)
		}
	}
	return own
}

// mergePairs returns the entries a merge key brings in: one mapping, or a list
// of mappings of which the earlier win.
func (d *decoder) mergePairs(n *yaml.Node, path string) []pair {
	n = d.resolve(n)
	if n == nil {
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		return d.pairs(n, path)
	case yaml.SequenceNode:
		var out []pair
		seen := make(map[string]bool)
		for _, item := range n.Content {
			item = d.resolve(item)
			if item == nil {
				return out
			}
			if item.Kind != yaml.MappingNode {
				d.add(path, fmt.Sprintf("'<<' must merge mappings, got %s (line %d)", kindName(item), item.Line))
				continue
			}
			for _, p := range d.pairs(item, path) {
				if !seen[p.key] {
					seen[p.key] = true
					out = append(out, p)
				}
			}
		}
		return out
	}
	d.add(path, fmt.Sprintf("'<<' must merge a mapping, got %s (line %d)", kindName(n), n.Line))
	return nil
}

// fieldIndex finds the field of struct t whose yaml tag is key.
func fieldIndex(t reflect.Type, key string) (int, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() && f.Tag.Get("yaml") == key {
			return i, true
		}
	}
	return 0, false
}

// unknownKeyMessage explains an unknown key, suggesting a near sibling or the
// place a key of that name belongs.
func unknownKeyMessage(t reflect.Type, path, key string, line int) string {
	msg := fmt.Sprintf("unknown key (line %d)", line)
	best, bestDist := "", 3
	for i := range t.NumField() {
		name := t.Field(i).Tag.Get("yaml")
		if name == "" {
			continue
		}
		if dist := editDistance(strings.ToLower(key), name); dist < bestDist {
			best, bestDist = name, dist
		}
	}
	if best != "" && bestDist <= max(1, len(key)/3) {
		return msg + fmt.Sprintf("; did you mean %q?", best)
	}
	var places []string
	for _, f := range schema() {
		if strings.HasSuffix(f.key, "."+key) || (f.key == key && path != "") {
			places = append(places, f.key)
		}
	}
	switch {
	case len(places) == 1:
		return msg + fmt.Sprintf("; %q belongs at %s", key, places[0])
	case len(places) > 1:
		return msg + fmt.Sprintf("; %q belongs at one of %s", key, strings.Join(places, ", "))
	}
	return msg
}

// editDistance is the optimal-string-alignment distance between a and b:
// insertions, deletions, substitutions and swaps of neighbours ("inptu") cost 1.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	// d[i][j] is the distance between a[:i] and b[:j].
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
