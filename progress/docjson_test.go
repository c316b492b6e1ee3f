package progress_test

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
)

// docKey matches a row of the JSON table of the package doc: a key and
// its type.
var docKey = regexp.MustCompile(`(?m)^//\t(\w+) +(?:string|number|object) `)

// The package doc's table of the JSON form lists every key that
// MarshalJSON writes, in the order it writes them: browsers and other
// readers are written against that table, so a key added to the wire
// form, or moved, must be added to it, or moved, too.
func TestDocListsTheJSONKeysInOrder(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	var documented []string
	for _, m := range docKey.FindAllStringSubmatch(string(src), -1) {
		documented = append(documented, m[1])
	}
	full := progress.Event{
		RunID: "r1", GraphKey: "lecture-42", Seq: 7, Time: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
		Type: progress.NodeRetrying, Node: "script", Kind: "script", BatchKey: "k", Round: 1, Stage: 1, StageDone: 1, StageTotal: 3, BatchDone: 1, BatchTotal: 2, Attempt: 2, Message: "m",
		PreviewURL: "https://example.com/p", Reasoning: "r", Error: "e", Done: 5, Total: 20,
		Counts: &progress.Counts{Generated: 1}, Plan: &progress.Outline{}, ETA: time.Second, ResumedBy: "r2",
		CancelledBy: "shutdown",
	}
	v := reflect.ValueOf(full)
	for i := range v.NumField() {
		require.False(t, v.Field(i).IsZero(), "set Event.%s in this test, so that its key is checked", v.Type().Field(i).Name)
	}
	data, err := json.Marshal(full)
	require.NoError(t, err)
	dec := json.NewDecoder(bytes.NewReader(data))
	_, err = dec.Token() // {
	require.NoError(t, err)
	var written []string
	for dec.More() {
		key, err := dec.Token()
		require.NoError(t, err)
		written = append(written, key.(string))
		var v json.RawMessage
		require.NoError(t, dec.Decode(&v))
	}
	if diff := cmp.Diff(written, documented); diff != "" {
		t.Errorf("doc.go's JSON table differs from what MarshalJSON writes (-written +documented):\n%s", diff)
	}
}
