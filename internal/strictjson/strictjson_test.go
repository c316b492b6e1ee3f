package strictjson_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/strictjson"
)

var names = []string{"kinds", "name", "deps", "kind", "scope", "perSegment"}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     *strictjson.KeyError // nil: accepted
		msg      string
	}{
		{name: "exact keys", in: `{"kinds":[{"name":"a","deps":[{"kind":"b","scope":"global"}]}]}`},
		{name: "string values that look like keys", in: `{"kinds":[{"name":"KINDS","deps":[]},{"name":"kinds"}]}`},
		{name: "scalars and empty containers", in: `{"kinds":[1,2.5,true,null,"x",[],{}],"name":{}}`},
		{name: "not an object", in: `[{"name":1},{"name":2}]`},
		{name: "same key in sibling objects", in: `{"kinds":[{"name":"a"},{"name":"b"}]}`},
		{name: "same key at two depths", in: `{"kind":"x","deps":[{"kind":"y"}]}`},
		{name: "trailing data is the decoder's", in: `{"name":"a"} {"NAME":1}`},
		{
			name: "case variant at the top", in: `{"KINDS":[]}`,
			want: &strictjson.KeyError{Key: "KINDS", Want: "kinds"},
			msg:  `key "KINDS" does not match "kinds": names are case-sensitive`,
		},
		{
			name: "case variant deep", in: `{"kinds":[{"name":"a"},{"name":"b","deps":[{"kind":"c","Scope":"global"}]}]}`,
			want: &strictjson.KeyError{Key: "Scope", Path: "kinds[1].deps[0]", Want: "scope"},
			msg:  `key "Scope" in kinds[1].deps[0] does not match "scope": names are case-sensitive`,
		},
		{
			name: "duplicate at the top", in: `{"kinds":[{"name":"a"}],"kinds":[{"name":"b"}]}`,
			want: &strictjson.KeyError{Key: "kinds", Duplicate: true},
			msg:  `key "kinds" appears twice in one object; give each field once`,
		},
		{
			name: "duplicate after a nested value", in: `{"kinds":[{"deps":[{"kind":"a"}],"name":"x","deps":[]}]}`,
			want: &strictjson.KeyError{Key: "deps", Path: "kinds[0]", Duplicate: true},
		},
		{
			name: "unknown key", in: `{"colour":1}`,
			want: &strictjson.KeyError{Key: "colour"},
			msg:  `unknown field "colour"; allowed fields: deps, kind, kinds, name, perSegment, scope`,
		},
		{
			name: "empty key", in: `{"":1}`,
			want: &strictjson.KeyError{Key: ""},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := strictjson.Check([]byte(tc.in), names...)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			var ke *strictjson.KeyError
			require.ErrorAs(t, err, &ke)
			assert.Equal(t, tc.want.Key, ke.Key)
			assert.Equal(t, tc.want.Path, ke.Path)
			assert.Equal(t, tc.want.Duplicate, ke.Duplicate)
			assert.Equal(t, tc.want.Want, ke.Want)
			assert.Equal(t, []string{"deps", "kind", "kinds", "name", "perSegment", "scope"}, ke.Allowed)
			if tc.msg != "" {
				assert.EqualError(t, err, tc.msg)
			}
		})
	}
}

func TestCheckMalformed(t *testing.T) {
	for _, in := range []string{``, `{`, `{"name"`, `{"name":}`, `{"name":1,}`, `[1,]`, `{1:2}`} {
		err := strictjson.Check([]byte(in), names...)
		require.Error(t, err, "%q", in)
		var ke *strictjson.KeyError
		assert.False(t, errors.As(err, &ke), "%q: %v", in, err)
	}
}

// FuzzCheck: never a panic; valid JSON gives nil or a *KeyError, and a
// key error names a key that is really wrong.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{"kinds":[{"name":"a"}]}`, `{"a":{"b":[{"c":1}]},"a":2}`, `{"KIND":1}`, `[[[{}]]]`, `"x"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := strictjson.Check(data, names...)
		var ke *strictjson.KeyError
		if err != nil && errors.As(err, &ke) {
			if !ke.Duplicate {
				for _, n := range names {
					if n == ke.Key {
						t.Fatalf("refused the allowed key %q", n)
					}
				}
			}
			return
		}
		if err == nil || !json.Valid(data) {
			return
		}
		// Valid JSON, no key error: only trailing data can make a
		// decoder fail, and Valid rules that out.
		t.Fatalf("valid JSON %q: %v", data, err)
	})
}

// TestCheckForm: each object is checked against its own form's keys, and
// named with its place and the keys that place allows; objects that no
// form covers are the decoder's.
func TestCheckForm(t *testing.T) {
	dep := &strictjson.Object{Keys: []string{"kind", "scope"}}
	kind := &strictjson.Object{Keys: []string{"deps", "name"}, Items: map[string]*strictjson.Object{"deps": dep}}
	top := &strictjson.Object{Keys: []string{"kinds", "meta"}, Items: map[string]*strictjson.Object{"kinds": kind}}
	for _, tc := range []struct {
		name, in string
		msg      string // "": accepted
	}{
		{"exact keys", `{"kinds":[{"name":"a","deps":[{"kind":"b","scope":"global"}]}]}`, ""},
		{"an object no form covers", `{"meta":{"anything":1,"anything":2}}`, ""},
		{"a key of another object", `{"kinds":[{"name":"a","kind":"x"}]}`,
			`unknown field "kind" in kinds[0]; allowed fields: deps, name`},
		{"a key of another object, in another case", `{"kinds":[{"name":"a","Kind":"x"}]}`,
			`unknown field "Kind" in kinds[0]; allowed fields: deps, name`},
		{"a case variant of its own key", `{"kinds":[{"name":"a","deps":[{"kind":"b","Scope":"global"}]}]}`,
			`key "Scope" in kinds[0].deps[0] does not match "scope": names are case-sensitive`},
		{"a repeat", `{"kinds":[{"name":"a"},{"name":"b","name":"c"}]}`,
			`key "name" appears twice in one object in kinds[1]; give each field once`},
		{"an array's arrays share its form", `{"kinds":[[{"colour":1}]]}`,
			`unknown field "colour" in kinds[0][0]; allowed fields: deps, name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := strictjson.CheckForm([]byte(tc.in), top)
			if tc.msg == "" {
				require.NoError(t, err)
				return
			}
			var ke *strictjson.KeyError
			require.ErrorAs(t, err, &ke)
			assert.Equal(t, tc.msg, err.Error())
		})
	}
}

// FuzzCheckForm checks any JSON against a form of three kinds of object
// (a template's, with a "meta" object that no form covers): nothing
// panics, the same input gives the same answer, and valid JSON gives nil
// or a *KeyError. A key error is right: a repeated key is one its object
// allows, any other is not, Want is the allowed key that matches it when
// case is ignored, and Allowed and Path are those of one and the same
// object (which may come before a syntax error further on: CheckForm
// reads as it goes). Nil means the first value decodes; any other error,
// that it does not.
func FuzzCheckForm(f *testing.F) {
	dep := &strictjson.Object{Keys: []string{"kind", "scope"}}
	kind := &strictjson.Object{Keys: []string{"deps", "name"}, Items: map[string]*strictjson.Object{"deps": dep}}
	top := &strictjson.Object{Keys: []string{"kinds", "meta"}, Items: map[string]*strictjson.Object{"kinds": kind}}
	paths := map[string]*regexp.Regexp{ // by the object's first allowed key
		"kinds": regexp.MustCompile(`^$`),
		"deps":  regexp.MustCompile(`^kinds(\[\d+\])*$`),
		"kind":  regexp.MustCompile(`^kinds(\[\d+\])*\.deps(\[\d+\])*$`),
	}
	for _, s := range []string{
		`{"kinds":[{"name":"a","deps":[{"kind":"b","scope":"global"}]}]}`, `{"meta":{"x":1,"x":2}}`,
		`{"kinds":[[{"Name":1}]]}`, `{"kinds":[{"deps":[{"kind":1,"kind":2}]}]}`, `{"KINDS":1}`,
		`{"kinds":[{"deps":{"scope":1}}]}`, `[{"kinds":1}]`, `{"kinds":1} x`, `{"kinds":[`, ``, `{"":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := strictjson.CheckForm(data, top)
		if again := strictjson.CheckForm(data, top); fmt.Sprint(again) != fmt.Sprint(err) {
			t.Fatalf("CheckForm(%q) = %v, then %v", data, err, again)
		}
		var raw json.RawMessage
		decErr := json.NewDecoder(bytes.NewReader(data)).Decode(&raw)
		var ke *strictjson.KeyError
		if !errors.As(err, &ke) {
			switch {
			case err == nil && decErr != nil:
				t.Fatalf("CheckForm(%q) accepted a first value that does not decode: %v", data, decErr)
			case err != nil && decErr == nil:
				t.Fatalf("CheckForm(%q) = %v for a first value that decodes", data, err)
			case err != nil && json.Valid(data):
				t.Fatalf("CheckForm(%q) = %v (%T) for valid JSON", data, err, err)
			}
			return
		}
		if len(ke.Allowed) == 0 || paths[ke.Allowed[0]] == nil {
			t.Fatalf("CheckForm(%q) = %v: allowed %v is no object's", data, err, ke.Allowed)
		}
		if !paths[ke.Allowed[0]].MatchString(ke.Path) {
			t.Fatalf("CheckForm(%q) = %v: path %q is not that of an object allowing %v", data, err, ke.Path, ke.Allowed)
		}
		_, allowed := slices.BinarySearch(ke.Allowed, ke.Key)
		switch {
		case ke.Duplicate != allowed:
			t.Fatalf("CheckForm(%q) = %v: key %q allowed %v, duplicate %v", data, err, ke.Key, allowed, ke.Duplicate)
		case !ke.Duplicate && ke.Want != "" && (!strings.EqualFold(ke.Want, ke.Key) || !slices.Contains(ke.Allowed, ke.Want)):
			t.Fatalf("CheckForm(%q) = %v: want %q for key %q", data, err, ke.Want, ke.Key)
		case !ke.Duplicate && ke.Want == "" && slices.ContainsFunc(ke.Allowed, func(k string) bool { return strings.EqualFold(k, ke.Key) }):
			t.Fatalf("CheckForm(%q) = %v: key %q matches an allowed key in another case", data, err, ke.Key)
		case strings.Contains(err.Error(), "\n"):
			t.Fatalf("CheckForm(%q): message has a newline: %q", data, err)
		}
	})
}

// FuzzCountArrays counts the "kinds" of any JSON, the "deps" of each of
// its elements, and "x": nothing panics, and each is called, class by
// class, exactly as often and with the counts that decoding the JSON
// gives, when it is valid and repeats no key. An error of each at its
// k-th call ends the walk there and is returned.
func FuzzCountArrays(f *testing.F) {
	for _, s := range []string{
		`{"kinds":[{"deps":[1,2]},{"deps":[]},3,{"deps":[{"deps":[1]}]}],"x":[1,[2]]}`, `{"x":[],"kinds":[[{"deps":[1]}]]}`,
		`{"kinds":[1],"kinds":[2,3]}`, `{"kinds":{"deps":[1]}}`, `[{"kinds":[1]}]`, `{"kinds":[1,`, ``, `{"kinds":[{"x":[1],"kinds":[2]}]}`,
	} {
		f.Add([]byte(s), uint8(2))
	}
	paths := map[string]int{"kinds": 1, "kinds/deps": 2, "x": 3}
	class := func(keys []string) int { return paths[strings.Join(keys, "/")] }
	errStop := errors.New("stop")
	f.Fuzz(func(t *testing.T, data []byte, stop uint8) {
		var calls []string
		each := func(c int, counts []int) error {
			if len(counts) != map[int]int{1: 1, 2: 2, 3: 1}[c] {
				t.Fatalf("CountArrays(%q): class %d with counts %v", data, c, counts)
			}
			calls = append(calls, fmt.Sprint(c, counts))
			return nil
		}
		if err := strictjson.CountArrays(data, class, each); err != nil {
			t.Fatalf("CountArrays(%q) = %v, with each never failing", data, err)
		}
		all := calls
		if k := int(stop); k >= 1 && k <= len(all) {
			calls = nil
			err := strictjson.CountArrays(data, class, func(c int, counts []int) error {
				calls = append(calls, fmt.Sprint(c, counts))
				if len(calls) == k {
					return errStop
				}
				return nil
			})
			if err != errStop || !slices.Equal(calls, all[:k]) {
				t.Fatalf("CountArrays(%q), stopped at call %d: %v after %v; want errStop after %v", data, k, err, calls, all[:k])
			}
		}
		if !json.Valid(data) || repeatsAKey(data) {
			return
		}
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			t.Fatal(err)
		}
		want := map[int][]string{}
		if top, ok := v.(map[string]any); ok {
			kinds, _ := top["kinds"].([]any)
			for i, k := range kinds {
				want[1] = append(want[1], fmt.Sprint(1, []int{i + 1}))
				obj, _ := k.(map[string]any)
				deps, _ := obj["deps"].([]any)
				for j := range deps {
					want[2] = append(want[2], fmt.Sprint(2, []int{i + 1, j + 1}))
				}
			}
			xs, _ := top["x"].([]any)
			for i := range xs {
				want[3] = append(want[3], fmt.Sprint(3, []int{i + 1}))
			}
		}
		got := map[int][]string{}
		for _, c := range all {
			got[int(c[0]-'0')] = append(got[int(c[0]-'0')], c)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("CountArrays(%q), calls by class (-decoded +counted):\n%s", data, diff)
		}
	})
}

// repeatsAKey reports whether an object of the valid JSON in data has a
// key twice: CheckForm, allowing every string of data at any depth,
// refuses only a repeat.
func repeatsAKey(data []byte) bool {
	var all []string
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		if s, ok := tok.(string); ok {
			all = append(all, s)
		}
	}
	every := &strictjson.Object{Keys: slices.Compact(slices.Sorted(slices.Values(all)))}
	every.Nested = every
	return strictjson.CheckForm(data, every) != nil
}
