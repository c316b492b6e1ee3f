package strictjson_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/strictjson"
)

// TestCountArrays: class is asked about each array that a path of keys
// holds, through picked arrays only; each is called for each element of a
// picked array, with the counts of the picked arrays that hold it; the
// first error of each ends the walk.
func TestCountArrays(t *testing.T) {
	errStop := errors.New("stop")
	// deep nests a picked array 50 levels deep: {"a":[{"a":[ … 1 … ]}]}.
	deep := strings.Repeat(`{"a":[`, 50) + "1" + strings.Repeat("]}", 50)
	var deepAsked, deepCalls []string
	for i := 1; i <= 50; i++ {
		p := strings.TrimSuffix(strings.Repeat("a/", i), "/")
		deepAsked = append(deepAsked, p)
		deepCalls = append(deepCalls, p+" "+strings.TrimSuffix(strings.Repeat("1 ", i), " "))
	}
	for _, tc := range []struct {
		name, in string
		pick     []string // the paths picked, as "a/b"; each is its own class
		stopAt   string   // each fails at this call
		asked    []string // the paths class is asked about, in order
		calls    []string // each's calls: the path of the class, then counts
		err      error
	}{
		{name: "not an object", in: `[[1],{"a":[1]}]`, pick: []string{"a"}},
		{name: "a scalar", in: `"a"`, pick: []string{"a"}},
		{name: "empty", in: ``, pick: []string{"a"}},
		{
			name: "one array of three", in: `{"a":[1,"x",null],"b":[true]}`, pick: []string{"a"},
			asked: []string{"a", "b"},
			calls: []string{"a 1", "a 2", "a 3"},
		},
		{
			name: "keys that are not arrays", in: `{"a":1,"b":"[1]","c":{"a":[1]},"d":null,"e":{}}`, pick: []string{"a", "c", "c/a"},
		},
		{
			name: "nested", in: `{"a":[{"b":[1,2]},{"b":[3],"c":[4]},5]}`, pick: []string{"a", "a/b"},
			asked: []string{"a", "a/b", "a/b", "a/c"},
			calls: []string{"a 1", "a/b 1 1", "a/b 1 2", "a 2", "a/b 2 1", "a 3"},
		},
		{
			name: "under an array not picked", in: `{"a":[{"b":[1]}]}`, pick: []string{"a/b"},
			asked: []string{"a"},
		},
		{
			name: "arrays of arrays", in: `{"a":[[{"b":[1]}],[[2]],{"b":[[3],[4]]}]}`, pick: []string{"a", "a/b"},
			asked: []string{"a", "a/b"},
			calls: []string{"a 1", "a 2", "a 3", "a/b 3 1", "a/b 3 2"},
		},
		{
			name: "objects within objects", in: `{"a":[{"x":{"b":[1]}}],"y":{"a":[1]}}`, pick: []string{"a", "a/b"},
			asked: []string{"a"},
			calls: []string{"a 1"},
		},
		{
			name: "a key repeated", in: `{"a":[1],"a":[2,3]}`, pick: []string{"a"},
			asked: []string{"a", "a"},
			calls: []string{"a 1", "a 1", "a 2"},
		},
		{name: "deep nesting", in: deep, pick: deepAsked, asked: deepAsked, calls: deepCalls},
		{
			name: "deep nesting not picked", in: `{"a":[` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `,{"b":[1]}]}`, pick: []string{"a", "a/b"},
			asked: []string{"a", "a/b"},
			calls: []string{"a 1", "a 2", "a/b 2 1"},
		},
		{
			name: "early exit", in: `{"a":[{"b":[1,2,3]},{"b":[4]}]}`, pick: []string{"a", "a/b"}, stopAt: "a/b 1 2",
			asked: []string{"a", "a/b"},
			calls: []string{"a 1", "a/b 1 1", "a/b 1 2"},
			err:   errStop,
		},
		{
			name: "a syntax error ends the walk", in: `{"a":[1,2,}`, pick: []string{"a"},
			asked: []string{"a"},
			calls: []string{"a 1", "a 2"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var asked, calls []string
			class := func(keys []string) int {
				p := strings.Join(keys, "/")
				asked = append(asked, p)
				for i, q := range tc.pick {
					if q == p {
						return i + 1
					}
				}
				return 0
			}
			each := func(c int, counts []int) error {
				call := tc.pick[c-1] + " " + strings.Trim(fmt.Sprint(counts), "[]")
				calls = append(calls, call)
				if call == tc.stopAt {
					return errStop
				}
				return nil
			}
			err := strictjson.CountArrays([]byte(tc.in), class, each)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
			} else {
				require.NoError(t, err)
			}
			if diff := cmp.Diff(tc.asked, asked); diff != "" {
				t.Errorf("class asked about (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.calls, calls); diff != "" {
				t.Errorf("each called with (-want +got):\n%s", diff)
			}
		})
	}
}
