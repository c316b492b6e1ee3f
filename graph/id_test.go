package graph_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/graph"
)

func TestParseID(t *testing.T) {
	valid := []struct {
		in   string
		want graph.ID
	}{
		{"script", graph.ID{Kind: "script", Segment: graph.NoSegment}},
		{"timeline", graph.ID{Kind: "timeline", Segment: graph.NoSegment}},
		{"asset:music", graph.ID{Kind: "asset:music", Segment: graph.NoSegment}},
		{"asset:image:segment[0]", graph.ID{Kind: "asset:image", Segment: 0}},
		{"asset:image:segment[3]", graph.ID{Kind: "asset:image", Segment: 3}},
		{"asset:video:segment[359]", graph.ID{Kind: "asset:video", Segment: 359}},
		{"a:segment[999999999]", graph.ID{Kind: "a", Segment: 999_999_999}},
		// A global kind may contain "segment"; only a trailing "]" makes an index.
		{"a:segment", graph.ID{Kind: "a:segment", Segment: graph.NoSegment}},
		{"0kind/x.y_z-w", graph.ID{Kind: "0kind/x.y_z-w", Segment: graph.NoSegment}},
	}
	for _, tc := range valid {
		t.Run(tc.in, func(t *testing.T) {
			id, err := graph.ParseID(tc.in)
			require.NoError(t, err)
			assert.Equal(t, tc.want, id)
			assert.Equal(t, tc.in, id.String())
			assert.Equal(t, "pre "+tc.in, string(id.Append([]byte("pre "))))
		})
	}

	malformed := []struct {
		name, in, msg string
	}{
		{"empty", "", `empty: want "<kind>" or "<kind>:segment[<i>]"`},
		{"empty index", "a:segment[]", "segment index is empty"},
		{"leading zero", "a:segment[01]", `segment index "01" has a leading zero`},
		{"double zero", "a:segment[00]", "leading zero"},
		{"negative", "a:segment[-1]", `segment index "-1" is not a decimal number`},
		{"plus sign", "a:segment[+1]", "is not a decimal number"},
		{"letters", "a:segment[x]", `segment index "x" is not a decimal number`},
		{"hex", "a:segment[0x1]", "leading zero"},
		{"space", "a:segment[ 1]", "is not a decimal number"},
		{"decimal point", "a:segment[1.5]", "is not a decimal number"},
		{"non-ASCII digit", "a:segment[١]", "is not a decimal number"},
		{"ten digits", "a:segment[1000000000]", `segment index "1000000000" has more than 9 digits`},
		{"overflowing digits", "a:segment[99999999999999999999]", "more than 9 digits"},
		{"missing closing bracket", "a:segment[1", `has ":segment[" but does not end with "]"`},
		{"text after bracket", "a:segment[1]x", `does not end with "]"`},
		{"bracket without marker", "a[1]", `ends with "]" but has no ":segment["`},
		{"wrong marker", "a:seg[1]", `no ":segment["`},
		{"marker without kind", ":segment[1]", "kind is empty"},
		{"bad kind chars", "a b:segment[1]", `kind "a b" has ' ' at byte 1`},
		{"bad global kind", "a b", `kind "a b" has ' ' at byte 1`},
		{"kind starting with colon", ":a", "must start with a letter or a digit"},
		{"kind too long", strings.Repeat("a", 129), "has 129 bytes"},
		{"trailing space", "script ", "has ' ' at byte 6"},
		{"nested marker", "x:segment[1]:segment[2]", `kind "x:segment[1]" has '[' at byte 9`},
		{"only bracket", "]", `no ":segment["`},
		// The character named is the one in the input, not its first byte
		// read as Latin-1.
		{"non-ASCII kind", "café", `kind "café" has 'é' at byte 3`},
		{"non-ASCII per-segment kind", "naïve:segment[1]", `kind "naïve" has 'ï' at byte 2`},
		{"invalid UTF-8", "ab\xff", `kind "ab\xff" has byte '\xff' at byte 2`},
		// A character allowed nowhere is named as such, even first: "é"
		// is a letter, which "must start with a letter" denied.
		{"non-ASCII first", "élan", `kind "élan" has 'é' at byte 0: allowed are A-Z a-z 0-9 _ . : / -`},
		{"invalid UTF-8 first", "\xffa", `kind "\xffa" has byte '\xff' at byte 0`},
		{"space first", " a", `kind " a" has ' ' at byte 0`},
	}
	for _, tc := range malformed {
		t.Run(tc.name, func(t *testing.T) {
			id, err := graph.ParseID(tc.in)
			assert.Equal(t, graph.ID{}, id)
			var ie *graph.IDError
			require.ErrorAs(t, err, &ie)
			require.ErrorIs(t, err, graph.ErrMalformedID)
			assert.NotErrorIs(t, err, graph.ErrUnknownNode)
			assert.Equal(t, tc.in, ie.ID)
			requireErrorContains(t, err, "graph: malformed node ID ", tc.msg)
		})
	}
}

func TestIDString(t *testing.T) {
	assert.Equal(t, "script", graph.ID{Kind: "script", Segment: graph.NoSegment}.String())
	assert.Equal(t, "asset:image:segment[0]", graph.ID{Kind: "asset:image", Segment: 0}.String())
	assert.Equal(t, "asset:image:segment[12345]", graph.ID{Kind: "asset:image", Segment: 12345}.String())
}
