package schedule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/regengraph/regen/internal/strictjson"
)

// ConfigError is a [Config] that [New], [Restore], [Config.Check],
// [Config.MarshalJSON] or [Config.UnmarshalJSON] refuses: Field names the field that is wrong,
// as Config spells it ("Mode", "Workers", "Rates", "Caps", "Windows",
// "MaxBatch" or "Shared"), also for a member of the JSON form that sets it and for a
// key of an entry of its list (an unknown, repeated or miscased key in
// the second entry of "rates" is of "Rates", and Problem says "in
// rates[1]"), or is "" for JSON that does not read as a Config's form at
// all (not JSON, not an object, an unknown, repeated or miscased key of
// the object itself); Problem says what is wrong and what is allowed, in
// the JSON form's words for a member of it. It wraps [ErrInvalidConfig].
type ConfigError struct {
	// Field is the Config field that is wrong, or "".
	Field string
	// Problem says what is wrong.
	Problem string
}

func (e *ConfigError) Error() string { return "schedule: invalid config: " + e.Problem }

// Unwrap returns [ErrInvalidConfig].
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

func badConfig(field, format string, args ...any) error {
	return &ConfigError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// check returns a *ConfigError for the first thing wrong with c, in field
// order, and each map in key order, so that a bad Config is reported
// deterministically; nil if the machine takes c. It does not need the
// plan: a rate or a cap of a key the plan has not is checked too. A key
// or kind that is not UTF-8 is refused: none is a batch key or a kind,
// and encoding/json would write it as another, so that the JSON form
// would not read back.
func (c Config) check() error {
	if c.Mode != Dataflow && c.Mode != Staged {
		return badConfig("Mode", "mode %d: want Dataflow or Staged", c.Mode)
	}
	if c.Workers < 0 {
		return badConfig("Workers", "workers %d: want 0 (no cap) or more", c.Workers)
	}
	if c.MaxBatch < 0 {
		return badConfig("MaxBatch", "max batch %d: want 0 (no cap) or more", c.MaxBatch)
	}
	for _, kind := range sortedKeys(c.Windows) {
		if !utf8.ValidString(kind) {
			return badConfig("Windows", "a window for kind %q, which is not UTF-8: %s", cut(kind), notUTF8)
		}
		if w := c.Windows[kind]; w <= 0 {
			return badConfig("Windows", "window for kind %q is %v: want a positive duration (leave the kind out for none)", cut(kind), w)
		}
	}
	for _, key := range sortedKeys(c.Rates) {
		if !utf8.ValidString(key) {
			return badConfig("Rates", "a rate for batch key %q, which is not UTF-8: %s", cut(key), notUTF8)
		}
		if key == "" {
			return badConfig("Rates", "a rate for the empty batch key: rates apply to batch keys, and singles have none")
		}
		if r := c.Rates[key]; r.Starts <= 0 || r.Per <= 0 {
			return badConfig("Rates", "rate for batch key %q is %d per %v: want at least 1 start per positive period", cut(key), r.Starts, r.Per)
		}
	}
	for _, key := range sortedKeys(c.Caps) {
		if !utf8.ValidString(key) {
			return badConfig("Caps", "a cap for batch key %q, which is not UTF-8: %s", cut(key), notUTF8)
		}
		if key == "" {
			return badConfig("Caps", "a cap for the empty batch key: caps apply to batch keys, and singles have none")
		}
		if n := c.Caps[key]; n < 1 {
			return badConfig("Caps", "cap for batch key %q is %d: want at least 1", cut(key), n)
		}
	}
	return c.checkShared()
}

// notUTF8 says why a key or kind must be UTF-8.
const notUTF8 = "batch keys and kinds are, as the graph's names are, and the JSON form holds only UTF-8"

// sortedKeys returns the keys of m, sorted: the only way the package
// ranges over a map, so that nothing depends on a map's order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// configForm is a Config's JSON form. Its lists hold pointers so that a
// null entry reads as nil, and is refused as such rather than taken for
// an entry of the empty key.
type configForm struct {
	Mode     string        `json:"mode,omitempty"`
	Workers  int           `json:"workers,omitempty"`
	Rates    []*rateForm   `json:"rates,omitempty"`
	Caps     []*capForm    `json:"caps,omitempty"`
	Windows  []*windowForm `json:"windows,omitempty"`
	MaxBatch int           `json:"maxBatch,omitempty"`
	Shared   []*sharedForm `json:"shared,omitempty"`
}

// The entries of the lists, as MarshalJSON's doc shows them, for the
// message that refuses a null entry.
const (
	rateExample   = `a rate, an object such as {"key": "asset:image", "starts": 2, "per": "1.5s"}`
	capExample    = `a cap, an object such as {"key": "llm", "cap": 1}`
	windowExample = `a window, an object such as {"kind": "asset:video", "window": "4s"}`
	sharedExample = `a group of kinds that share bulk calls, an object such as {"kinds": ["tile:0", "tile:1"]}`
)

type rateForm struct {
	Key    string `json:"key"`
	Starts int    `json:"starts"`
	Per    string `json:"per"`
}

type capForm struct {
	Key string `json:"key"`
	Cap int    `json:"cap"`
}

type windowForm struct {
	Kind   string `json:"kind"`
	Window string `json:"window"`
}

type sharedForm struct {
	Kinds []string `json:"kinds"`
}

// configShape is the JSON form's objects, for strictjson.CheckForm. The
// top-level keys are listed: strictjson.Names would add the keys of the
// objects within.
var configShape = &strictjson.Object{
	Keys: []string{"caps", "maxBatch", "mode", "rates", "shared", "windows", "workers"},
	Items: map[string]*strictjson.Object{
		"rates":   {Keys: strictjson.Names(rateForm{})},
		"caps":    {Keys: strictjson.Names(capForm{})},
		"windows": {Keys: strictjson.Names(windowForm{})},
		"shared":  {Keys: strictjson.Names(sharedForm{})},
	},
}

// MarshalJSON writes c as one JSON object, whose keys come in this
// order, each left out when it is the field's default, and the same
// Config gives the same bytes:
//
//	{"mode": "staged",                                    // or "dataflow", the default
//	 "workers": 8,
//	 "rates": [{"key": "asset:image", "starts": 2, "per": "1.5s"}],
//	 "caps": [{"key": "llm", "cap": 1}],
//	 "windows": [{"kind": "asset:video", "window": "4s"}],
//	 "maxBatch": 3,
//	 "shared": [{"kinds": ["tile:0", "tile:1"]}]}
//
// The lists are by ascending key or kind ("shared" by its groups' first
// kinds, each group's kinds ascending, which the machine takes as the
// same groups), and durations are written as
// time.Duration.String writes them, which time.ParseDuration reads back
// to the same duration. An empty map is written as a nil one: both
// mean none. A driver that keeps a [Snapshot] keeps its Config so, and
// gives [Restore] the Config it reads back, which the machine takes as
// the same (a snapshot's fingerprint is the same).
//
// A Config that [New] would refuse for itself, whatever the plan, is
// refused with a [*ConfigError] instead, so that what MarshalJSON writes
// always reads back.
func (c Config) MarshalJSON() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	f := configForm{Workers: c.Workers, MaxBatch: c.MaxBatch}
	if c.Mode == Staged {
		f.Mode = Staged.String()
	}
	for _, key := range sortedKeys(c.Rates) {
		r := c.Rates[key]
		f.Rates = append(f.Rates, &rateForm{Key: key, Starts: r.Starts, Per: r.Per.String()})
	}
	for _, key := range sortedKeys(c.Caps) {
		f.Caps = append(f.Caps, &capForm{Key: key, Cap: c.Caps[key]})
	}
	for _, kind := range sortedKeys(c.Windows) {
		f.Windows = append(f.Windows, &windowForm{Kind: kind, Window: c.Windows[kind].String()})
	}
	for _, grp := range c.Shared {
		f.Shared = append(f.Shared, &sharedForm{Kinds: slices.Sorted(slices.Values(grp))})
	}
	slices.SortFunc(f.Shared, func(a, b *sharedForm) int { return strings.Compare(a.Kinds[0], b.Kinds[0]) })
	return json.Marshal(f)
}

// UnmarshalJSON reads a Config in the JSON form that [Config.MarshalJSON]
// writes, strictly: unknown keys, keys that differ in case, repeated
// keys, data after the object, a member of another JSON type (a string
// for "workers", an object for "caps"), a null entry in a list or null
// member of an entry (which encoding/json would read as the empty batch
// key, or 0), a key or kind listed twice, a duration time.ParseDuration
// does not read, and a Config that [New] would refuse for itself (a
// negative Workers, a rate of no starts...) are refused with a
// [*ConfigError] that names the field (but for a form that is not a
// Config's at all: see [ConfigError]). The lists may come in any order.
// JSON null leaves c as it is, as encoding/json does for a null value;
// a null member of the object ("workers": null) is read as one left out,
// the field's default. On error it leaves c unchanged.
func (c *Config) UnmarshalJSON(data []byte) error {
	if string(bytes.Trim(data, " \t\r\n")) == "null" { // JSON's whitespace only
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return badConfig("", "bad JSON: no JSON value: want an object")
		}
		return badConfig("", "bad JSON: %v", strictjson.Bound(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badConfig("", "bad JSON: data after the Config object")
	}
	if err := strictjson.CheckForm(raw, configShape); err != nil {
		// A key wrong in an entry of a list ("rates[1]") is the field's
		// that the list sets; one of the object itself is no field's.
		field := ""
		if ke := (*strictjson.KeyError)(nil); errors.As(err, &ke) && ke.Path != "" {
			list, _, _ := strings.Cut(ke.Path, "[")
			field = configJSON.members[list].field
		}
		return badConfig(field, "bad JSON: %v", strictjson.Bound(err))
	}
	var f configForm
	dec = json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return badType(te)
		}
		return badConfig("", "bad JSON: %v", strictjson.Bound(err))
	}
	if field, problem, ok := configJSON.nullProblem(raw); ok {
		return badConfig(field, "%s", problem)
	}
	out := Config{Workers: f.Workers, MaxBatch: f.MaxBatch}
	switch f.Mode {
	case "", Dataflow.String():
	case Staged.String():
		out.Mode = Staged
	default:
		return badConfig("Mode", "mode %q: want %q or %q", cut(f.Mode), Dataflow.String(), Staged.String())
	}
	for k, r := range f.Rates {
		if r == nil {
			return badConfig("Rates", "rates[%d] is null: want %s", k, rateExample)
		}
		per, err := duration(r.Per)
		if err != nil {
			return badConfig("Rates", "rate for batch key %q: per %q: %v", cut(r.Key), cut(r.Per), err)
		}
		if _, ok := out.Rates[r.Key]; ok {
			return badConfig("Rates", "a rate for batch key %q twice: give each key once", cut(r.Key))
		}
		if out.Rates == nil {
			out.Rates = make(map[string]Rate, len(f.Rates))
		}
		out.Rates[r.Key] = Rate{Starts: r.Starts, Per: per}
	}
	for k, cp := range f.Caps {
		if cp == nil {
			return badConfig("Caps", "caps[%d] is null: want %s", k, capExample)
		}
		if _, ok := out.Caps[cp.Key]; ok {
			return badConfig("Caps", "a cap for batch key %q twice: give each key once", cut(cp.Key))
		}
		if out.Caps == nil {
			out.Caps = make(map[string]int, len(f.Caps))
		}
		out.Caps[cp.Key] = cp.Cap
	}
	for k, w := range f.Windows {
		if w == nil {
			return badConfig("Windows", "windows[%d] is null: want %s", k, windowExample)
		}
		d, err := duration(w.Window)
		if err != nil {
			return badConfig("Windows", "window for kind %q: %q: %v", cut(w.Kind), cut(w.Window), err)
		}
		if _, ok := out.Windows[w.Kind]; ok {
			return badConfig("Windows", "a window for kind %q twice: give each kind once", cut(w.Kind))
		}
		if out.Windows == nil {
			out.Windows = make(map[string]time.Duration, len(f.Windows))
		}
		out.Windows[w.Kind] = d
	}
	for k, sh := range f.Shared {
		if sh == nil {
			return badConfig("Shared", "shared[%d] is null: want %s", k, sharedExample)
		}
		out.Shared = append(out.Shared, sh.Kinds)
	}
	if err := out.check(); err != nil {
		return err
	}
	*c = out
	return nil
}

// configJSON is what the members of a Config's JSON form hold.
var configJSON = &jsonForm{
	top: `an object, such as {"workers": 8}`,
	members: map[string]jsonMember{
		"mode":           {"Mode", "mode", `a string, "dataflow" or "staged"`},
		"workers":        {"Workers", "workers", "an integer, 0 (no cap) or more"},
		"maxBatch":       {"MaxBatch", "maxBatch", "an integer, 0 (no cap) or more"},
		"rates":          {"Rates", "rates", `a list of rates, such as [{"key": "asset:image", "starts": 2, "per": "1.5s"}]`},
		"rates.key":      {"Rates", `rates: a rate's "key"`, "a string, the batch key"},
		"rates.starts":   {"Rates", `rates: a rate's "starts"`, "an integer, 1 or more"},
		"rates.per":      {"Rates", `rates: a rate's "per"`, `a duration in a string, such as "1.5s"`},
		"caps":           {"Caps", "caps", `a list of caps, such as [{"key": "llm", "cap": 1}]`},
		"caps.key":       {"Caps", `caps: a cap's "key"`, "a string, the batch key"},
		"caps.cap":       {"Caps", `caps: a cap's "cap"`, "an integer, 1 or more"},
		"windows":        {"Windows", "windows", `a list of windows, such as [{"kind": "asset:video", "window": "4s"}]`},
		"windows.kind":   {"Windows", `windows: a window's "kind"`, "a string, the kind"},
		"windows.window": {"Windows", `windows: a window's "window"`, `a duration in a string, such as "4s"`},
		"shared":         {"Shared", "shared", `a list of groups of kinds, such as [{"kinds": ["tile:0", "tile:1"]}]`},
		"shared.kinds":   {"Shared", `shared: a group's "kinds"`, `a list of kinds, such as ["tile:0", "tile:1"]`},
	},
	entries: map[string]string{"rates": rateExample, "caps": capExample, "windows": windowExample,
		"shared": sharedExample, "shared.kinds": "a string, a kind"},
}

// badType returns the *ConfigError for a JSON value of the wrong type.
func badType(te *json.UnmarshalTypeError) error {
	field, problem := configJSON.typeProblem(te)
	return badConfig(field, "%s", problem)
}

// jsonForm says what the members of a JSON form hold, so that a JSON
// value of the wrong type is refused in the form's words: encoding/json's
// own message names the Go types that read the form.
type jsonForm struct {
	// top is what the form is, for a value that is not an object.
	top string
	// members are the form's members, as encoding/json's
	// UnmarshalTypeError.Field names them.
	members map[string]jsonMember
	// entries says what an entry of each list member is.
	entries map[string]string
}

// jsonMember is a member of a JSON form.
type jsonMember struct {
	field string // the Config field it sets, or "" (a snapshot's)
	name  string // its name in a message
	want  string // what it holds
}

// typeProblem returns the field that te's member sets and a Problem that
// names the member, what it holds and what it held instead.
func (j *jsonForm) typeProblem(te *json.UnmarshalTypeError) (field, problem string) {
	got := "a " + te.Value // "string", "number"
	switch kind, lit, _ := strings.Cut(te.Value, " "); {
	case kind == "number" && lit != "":
		got = "the number " + cut(lit)
	case kind == "string" && lit != "": // a time's string, quoted
		got = cut(lit)
	case kind == "array" || kind == "object":
		got = "an " + kind
	case kind == "bool":
		got = "true or false"
	}
	m, ok := j.members[te.Field]
	entry, isList := j.entries[te.Field]
	switch {
	case te.Field == "":
		return "", fmt.Sprintf("bad JSON: want %s, not %s", j.top, got)
	case !ok: // every member is listed; kept so that none reads as another
		return "", fmt.Sprintf("bad JSON: %s: not %s", cut(te.Field), got)
	case isList && te.Type.Kind() != reflect.Slice: // an entry of the list
		return m.field, fmt.Sprintf("%s: want %s, not %s", m.name, entry, got)
	}
	return m.field, fmt.Sprintf("%s: want %s, not %s", m.name, m.want, got)
}

// nullProblem returns, for the first null in raw, the form's JSON, that
// is an entry of a list or a member of an entry ("held[0].nodes[2]",
// "rates[0].key"), which encoding/json reads as its zero value (node 0,
// the empty batch key, a start at the zero time), the field it sets and
// a Problem that says where it is and what it holds. A null member of
// the object itself is left alone: encoding/json leaves it unset, as if
// left out. raw holds no null at all but for a rare string, which the
// walk then reads past.
func (j *jsonForm) nullProblem(raw []byte) (field, problem string, ok bool) {
	if !bytes.Contains(raw, []byte("null")) {
		return "", "", false
	}
	type frame struct {
		object  bool
		key     string // an object's current key
		inValue bool   // an object's key was read, its value not yet
		index   int    // an array's current index
	}
	var stack []frame
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", "", false // the end of raw, which is one value
		}
		n := len(stack)
		if n > 0 && stack[n-1].object && !stack[n-1].inValue {
			if key, isKey := tok.(string); isKey {
				stack[n-1].key, stack[n-1].inValue = key, true
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			stack = append(stack, frame{object: tok == json.Delim('{')})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:n-1]
		case nil:
			if n > 1 {
				var path, member strings.Builder
				for _, f := range stack {
					if !f.object {
						fmt.Fprintf(&path, "[%d]", f.index)
						continue
					}
					if path.Len() > 0 {
						path.WriteByte('.')
						member.WriteByte('.')
					}
					path.WriteString(f.key)
					member.WriteString(f.key)
				}
				want := j.members[member.String()].want
				if !stack[n-1].object {
					want = j.entries[member.String()]
				}
				top, _, _ := strings.Cut(member.String(), ".")
				return j.members[top].field, fmt.Sprintf("%s is null: want %s", path.String(), want), true
			}
		}
		// A value has ended, in the object or array that holds it.
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].inValue = false
		} else if n > 0 {
			stack[n-1].index++
		}
	}
}

// duration reads a duration of the JSON form: "" is 0, which the checks
// then refuse as not positive.
func duration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New(`want a duration such as "1s" or "1m30s"`)
	}
	return d, nil
}
