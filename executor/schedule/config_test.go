package schedule_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
)

// TestConfigJSON: a Config writes as JSON, the same Config as the same
// bytes whatever its maps' order, and reads back to a Config that the
// machine takes as the same (its snapshots' fingerprints are equal).
func TestConfigJSON(t *testing.T) {
	full := schedule.Config{Mode: schedule.Staged, Workers: 8, MaxBatch: 3,
		Rates:   map[string]schedule.Rate{graph.KindVideo: {Starts: 1, Per: time.Minute}, graph.KindImage: {Starts: 2, Per: 1500 * time.Millisecond}},
		Caps:    map[string]int{graph.KindVideo: 2, graph.KindImage: 1},
		Windows: map[string]time.Duration{graph.KindVideo: 4 * time.Second}}
	for _, tc := range []struct {
		name string
		cfg  schedule.Config
		want string
	}{
		{"the zero Config", schedule.Config{}, `{}`},
		{"empty maps", schedule.Config{Rates: map[string]schedule.Rate{}, Caps: map[string]int{}}, `{}`},
		{"every field", full, `{"mode":"staged","workers":8,` +
			`"rates":[{"key":"asset:image","starts":2,"per":"1.5s"},{"key":"asset:video","starts":1,"per":"1m0s"}],` +
			`"caps":[{"key":"asset:image","cap":1},{"key":"asset:video","cap":2}],` +
			`"windows":[{"kind":"asset:video","window":"4s"}],"maxBatch":3}`},
		{"a trace's", traceConfig(schedule.Dataflow), `{"workers":8,"rates":[{"key":"asset:image","starts":2,"per":"3s"}],` +
			`"windows":[{"kind":"asset:video","window":"4s"}],"maxBatch":3}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.cfg)
			require.NoError(t, err)
			require.Equal(t, tc.want, string(b))
			var back schedule.Config
			require.NoError(t, json.Unmarshal(b, &back))
			b2, err := json.Marshal(back)
			require.NoError(t, err)
			require.Equal(t, string(b), string(b2), "the round trip")
			p := lecturePlan(t, 40)
			require.Equal(t, fingerprintOf(t, newMachine(t, p, tc.cfg).Snapshot()), fingerprintOf(t, newMachine(t, p, back).Snapshot()),
				"the machine takes the Config read back as the same")
		})
	}
	t.Run("null", func(t *testing.T) {
		// As encoding/json does for a null value, and planner.Plan's
		// UnmarshalJSON: a host that fills its Config in before it
		// decodes keeps it, rather than a Config of no rates or caps.
		c := full
		require.NoError(t, json.Unmarshal([]byte(" null\n"), &c))
		assert.Equal(t, full, c, "null leaves the Config as it is")
		h := struct{ Cfg schedule.Config }{Cfg: full}
		require.NoError(t, json.Unmarshal([]byte(`{"Cfg":null}`), &h))
		assert.Equal(t, full, h.Cfg, "a null field leaves the Config as it is")
	})
	t.Run("dataflow spelt out", func(t *testing.T) {
		var c schedule.Config
		require.NoError(t, json.Unmarshal([]byte(`{"mode":"dataflow"}`), &c))
		assert.Equal(t, schedule.Config{}, c)
	})
}

// TestConfigJSONRefuses: the JSON form is read strictly, and a Config
// that New would refuse is refused on reading and on writing, with a
// *ConfigError that names the field and wraps ErrInvalidConfig.
func TestConfigJSONRefuses(t *testing.T) {
	for _, tc := range []struct{ name, in, field, want string }{
		{"empty", ``, "", "no JSON value"},
		{"not an object", `[]`, "", `bad JSON: want an object, such as {"workers": 8}, not an array`},
		{"a string", `"x"`, "", `bad JSON: want an object, such as {"workers": 8}, not a string`},
		{"trailing data", `{} {}`, "", "data after the Config object"},
		{"unknown key", `{"worker":1}`, "", `unknown field "worker"`},
		{"a key in another case", `{"Workers":1}`, "", "names are case-sensitive"},
		{"a repeated key", `{"workers":1,"workers":2}`, "", "appears twice"},
		// A key wrong in an entry of a list is the list's field's.
		{"a key in a rate", `{"rates":[{"key":"k","starts":1,"per":"1s","Per":"2s"}]}`, "Rates", `"Per" in rates[0]`},
		{"an unknown key in a rate", `{"rates":[{"key":"k","starts":1,"per":"1s"},{"key":"j","every":"1s"}]}`, "Rates", `unknown field "every" in rates[1]; allowed fields: key, per, starts`},
		{"an unknown key in a cap", `{"caps":[{"key":"k","cap":1,"max":2}]}`, "Caps", `unknown field "max" in caps[0]`},
		{"a repeated key in a window", `{"windows":[{"kind":"v","window":"1s","window":"2s"}]}`, "Windows", `key "window" appears twice in one object in windows[0]`},
		// Type errors name the field and the JSON member, and say what
		// the member holds, not the Go types that read it.
		{"a mode not a string", `{"mode":3}`, "Mode", `mode: want a string, "dataflow" or "staged", not a number`},
		{"workers not a number", `{"workers":"x"}`, "Workers", `workers: want an integer, 0 (no cap) or more, not a string`},
		{"workers not whole", `{"workers":1.5}`, "Workers", `workers: want an integer, 0 (no cap) or more, not the number 1.5`},
		{"workers out of range", `{"workers":1e30}`, "Workers", `workers: want an integer, 0 (no cap) or more, not the number 1e30`},
		{"max batch a bool", `{"maxBatch":true}`, "MaxBatch", `maxBatch: want an integer, 0 (no cap) or more, not true or false`},
		{"rates not a list", `{"rates":{}}`, "Rates", `rates: want a list of rates, such as [{"key": "asset:image", "starts": 2, "per": "1.5s"}], not an object`},
		{"a rate not an object", `{"rates":[1]}`, "Rates", `rates: want a rate, an object such as {"key": "asset:image", "starts": 2, "per": "1.5s"}, not a number`},
		{"a rate's key a number", `{"rates":[{"key":1,"starts":1,"per":"1s"}]}`, "Rates", `rates: a rate's "key": want a string, the batch key, not a number`},
		{"a rate's starts a string", `{"rates":[{"key":"k","starts":"1","per":"1s"}]}`, "Rates", `rates: a rate's "starts": want an integer, 1 or more, not a string`},
		{"a rate's period a number", `{"rates":[{"key":"k","starts":1,"per":5}]}`, "Rates", `rates: a rate's "per": want a duration in a string, such as "1.5s", not a number`},
		{"caps not a list", `{"caps":{}}`, "Caps", `caps: want a list of caps, such as [{"key": "llm", "cap": 1}], not an object`},
		{"a cap not an object", `{"caps":["llm"]}`, "Caps", `caps: want a cap, an object such as {"key": "llm", "cap": 1}, not a string`},
		{"a cap's key an array", `{"caps":[{"key":[],"cap":1}]}`, "Caps", `caps: a cap's "key": want a string, the batch key, not an array`},
		{"a cap's cap a string", `{"caps":[{"key":"k","cap":"1"}]}`, "Caps", `caps: a cap's "cap": want an integer, 1 or more, not a string`},
		{"windows not a list", `{"windows":"4s"}`, "Windows", `windows: want a list of windows, such as [{"kind": "asset:video", "window": "4s"}], not a string`},
		{"a window not an object", `{"windows":[[]]}`, "Windows", `windows: want a window, an object such as {"kind": "asset:video", "window": "4s"}, not an array`},
		{"a window's kind a bool", `{"windows":[{"kind":false,"window":"4s"}]}`, "Windows", `windows: a window's "kind": want a string, the kind, not true or false`},
		{"a window's window a number", `{"windows":[{"kind":"v","window":4}]}`, "Windows", `windows: a window's "window": want a duration in a string, such as "4s", not a number`},
		{"a long number", `{"workers":1` + strings.Repeat("0", 300) + `}`, "Workers", "not the number 1000"},
		{"another mode", `{"mode":"eager"}`, "Mode", `mode "eager": want "dataflow" or "staged"`},
		{"negative workers", `{"workers":-1}`, "Workers", "workers -1: want 0 (no cap) or more"},
		{"negative max batch", `{"maxBatch":-2}`, "MaxBatch", "max batch -2: want 0 (no cap) or more"},
		{"a rate of no starts", `{"rates":[{"key":"k","starts":0,"per":"1s"}]}`, "Rates", `rate for batch key "k" is 0 per 1s`},
		{"a rate's bad period", `{"rates":[{"key":"k","starts":1,"per":"soon"}]}`, "Rates", `rate for batch key "k": per "soon": want a duration such as "1s" or "1m30s"`},
		{"a rate without a period", `{"rates":[{"key":"k","starts":1}]}`, "Rates", `rate for batch key "k" is 1 per 0s`},
		{"a rate twice", `{"rates":[{"key":"k","starts":1,"per":"1s"},{"key":"k","starts":2,"per":"1s"}]}`, "Rates", `a rate for batch key "k" twice`},
		{"a rate of the empty key", `{"rates":[{"key":"","starts":1,"per":"1s"}]}`, "Rates", "a rate for the empty batch key"},
		{"a null rate", `{"rates":[{"key":"k","starts":1,"per":"1s"},null]}`, "Rates", `rates[1] is null: want a rate, an object such as {"key": "asset:image", "starts": 2, "per": "1.5s"}`},
		{"a null cap", `{"caps":[null]}`, "Caps", `caps[0] is null: want a cap, an object such as {"key": "llm", "cap": 1}`},
		// A null member of an entry is not its zero value: no empty key.
		{"a rate's null key", `{"rates":[{"key":null,"starts":1,"per":"1s"}]}`, "Rates", `rates[0].key is null: want a string, the batch key`},
		{"a cap's null cap", `{"caps":[{"key":"k","cap":1},{"key":"j","cap":null}]}`, "Caps", `caps[1].cap is null: want an integer, 1 or more`},
		{"a window's null kind", `{"windows":[{"kind":null,"window":"1s"}]}`, "Windows", `windows[0].kind is null: want a string, the kind`},
		{"a null window", `{"windows":[null]}`, "Windows", `windows[0] is null: want a window, an object such as {"kind": "asset:video", "window": "4s"}`},
		{"a cap of zero", `{"caps":[{"key":"k","cap":0}]}`, "Caps", `cap for batch key "k" is 0: want at least 1`},
		{"a cap twice", `{"caps":[{"key":"k","cap":1},{"key":"k","cap":1}]}`, "Caps", `a cap for batch key "k" twice`},
		{"a negative window", `{"windows":[{"kind":"v","window":"-1s"}]}`, "Windows", `window for kind "v" is -1s: want a positive duration`},
		{"a window twice", `{"windows":[{"kind":"v","window":"1s"},{"kind":"v","window":"2s"}]}`, "Windows", `a window for kind "v" twice`},
		{"a long key", `{"caps":[{"key":"` + strings.Repeat("x", 200) + `","cap":0}]}`, "Caps", "xxx…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := schedule.Config{Workers: 5}
			err := c.UnmarshalJSON([]byte(tc.in))
			requireConfigError(t, err, tc.field, tc.want)
			assert.Equal(t, schedule.Config{Workers: 5}, c, "a refused Config leaves the value unchanged")
		})
	}
	t.Run("writing a bad Config", func(t *testing.T) {
		_, err := schedule.Config{Mode: 7}.MarshalJSON()
		requireConfigError(t, err, "Mode", "mode 7: want Dataflow or Staged")
		_, err = json.Marshal(schedule.Config{Windows: map[string]time.Duration{"v": 0}})
		requireConfigError(t, err, "Windows", `window for kind "v" is 0s`)
	})
	t.Run("a key or kind that is not UTF-8", func(t *testing.T) {
		// JSON holds only UTF-8: encoding/json would write each such key
		// as another (with U+FFFD), two of them as one key twice, which
		// UnmarshalJSON refuses. No batch key or kind is one, as the
		// graph's names are UTF-8: New refuses it too.
		for _, tc := range []struct {
			field, want string
			cfg         schedule.Config
		}{
			{"Rates", `a rate for batch key "a\xfe", which is not UTF-8`, schedule.Config{Rates: map[string]schedule.Rate{
				"a\xff": {Starts: 1, Per: time.Second}, "a\xfe": {Starts: 1, Per: time.Second}}}},
			{"Caps", `a cap for batch key "\xc3", which is not UTF-8`, schedule.Config{Caps: map[string]int{"\xc3": 1}}},
			{"Windows", `a window for kind "v\xed\xa0\x80", which is not UTF-8`, schedule.Config{Windows: map[string]time.Duration{"v\xed\xa0\x80": time.Second}}},
		} {
			_, err := tc.cfg.MarshalJSON()
			requireConfigError(t, err, tc.field, tc.want)
			_, err = schedule.New(lecturePlan(t, 20), tc.cfg)
			requireConfigError(t, err, tc.field, tc.want)
		}
	})
	t.Run("New's errors are typed too", func(t *testing.T) {
		_, err := schedule.New(lecturePlan(t, 20), schedule.Config{Caps: map[string]int{"k": -1}})
		requireConfigError(t, err, "Caps", `cap for batch key "k" is -1: want at least 1`)
	})
}

func requireConfigError(t *testing.T, err error, field, want string) {
	t.Helper()
	require.ErrorIs(t, err, schedule.ErrInvalidConfig)
	var ce *schedule.ConfigError
	require.True(t, errors.As(err, &ce), "a *ConfigError: %v", err)
	require.Equal(t, field, ce.Field, "Field of %v", err)
	require.ErrorContains(t, err, want)
	require.NotRegexp(t, `Form|Go (struct|value)`, err.Error(), "a message in the package's words, not its Go types")
	require.LessOrEqual(t, len(err.Error()), 400, "a long input makes a long message: %v", err)
}

// FuzzConfigJSON reads a Config from the fuzzer's bytes: reading never
// panics, and refuses with a *ConfigError; what it accepts New accepts
// too, and writes back to bytes that read again to the same bytes.
// go test -fuzz FuzzConfigJSON ./executor/schedule/
func FuzzConfigJSON(f *testing.F) {
	for _, c := range []schedule.Config{{}, traceConfig(schedule.Dataflow), traceConfig(schedule.Staged),
		{Caps: map[string]int{"llm": 1, graph.KindImage: 3}, Rates: map[string]schedule.Rate{"llm": {Starts: 1 << 30, Per: 1<<63 - 1}}}} {
		b, err := json.Marshal(c)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte(`{"mode":"dataflow","windows":[{"kind":"x","window":"1h2m3.5s"}]}`))
	f.Add([]byte(`{"shared":[{"kinds":["d","c"]},{"kinds":["b","a","e"]}]}`))
	p := lecturePlan(f, 20)
	f.Fuzz(func(t *testing.T, data []byte) {
		var c schedule.Config
		if err := c.UnmarshalJSON(data); err != nil {
			var ce *schedule.ConfigError
			require.True(t, errors.As(err, &ce), "not a *ConfigError: %v", err)
			require.ErrorIs(t, err, schedule.ErrInvalidConfig)
			return
		}
		_, err := schedule.New(p, c)
		require.NoError(t, err, "New refuses a Config read from %q", data)
		b, err := c.MarshalJSON()
		require.NoError(t, err)
		var again schedule.Config
		require.NoError(t, again.UnmarshalJSON(b), "reading back %s", b)
		b2, err := again.MarshalJSON()
		require.NoError(t, err)
		require.Equal(t, string(b), string(b2), "the round trip")
	})
}
