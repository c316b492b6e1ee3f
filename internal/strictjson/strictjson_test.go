package strictjson_test

import (
	"encoding/json"
	"errors"
	"testing"

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
