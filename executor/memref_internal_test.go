package executor

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A Put of an asset with up to maxRefData bytes of Data allocates once:
// its reference and the copy of its Data share an allocation, where it
// allocated "mem:" + key apart, one allocation a node on the hot path of
// every run. Larger Data, and none, are as before: the reference apart
// (and the copy).
func TestMemoryAssetsPutAllocations(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		a    Asset
		want float64
	}{
		{"no data", Asset{URL: "https://cdn.example.com/x"}, 1},
		{"empty data", Asset{Data: []byte{}}, 1},
		{"one byte", Asset{Data: []byte("x")}, 1},
		{"maxRefData bytes", Asset{Data: bytes.Repeat([]byte("x"), maxRefData)}, 1},
		{"maxRefData+1 bytes", Asset{Data: bytes.Repeat([]byte("x"), maxRefData+1)}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMemoryAssets()
			key := "lecture/asset:video:segment[3]/h"
			_, err := m.Put(ctx, key, tc.a) // the slot is made: Puts again replace it
			require.NoError(t, err)
			allocs := testing.AllocsPerRun(100, func() {
				if _, err := m.Put(ctx, key, tc.a); err != nil {
					t.Fatal(err)
				}
			})
			assert.Equal(t, tc.want, allocs, "allocations a Put")
		})
	}
}

// A reference that shares its allocation with the copy of its asset's
// Data is a string like any other: the copy's capacity ends with it, so
// a caller that appends to the Data it gets, or writes into what it
// appended (which it must not, but may), or reuses the slice it put,
// changes neither the reference nor the stored asset; nor does a Put
// that replaces the asset, or its deletion. Larger Data, copied apart,
// has its capacity cut to its length too: bytes.Clone's rounds up (1,152
// for 1,025 bytes), and an append then wrote into the stored asset.
func TestMemoryAssetsRefSharesNothingWritable(t *testing.T) {
	ctx := t.Context()
	for _, size := range []int{1, 7, maxRefData, maxRefData + 1} {
		t.Run(fmt.Sprint(size, " bytes"), func(t *testing.T) {
			m := NewMemoryAssets()
			in := bytes.Repeat([]byte("d"), size)
			key := fmt.Sprint("g/n/", size)
			ref, err := m.Put(ctx, key, Asset{Data: in})
			require.NoError(t, err)
			require.Equal(t, memRefPrefix+key, ref)
			clear(in) // the caller reuses its slice

			a, err := m.Get(ctx, ref)
			require.NoError(t, err)
			require.Equal(t, bytes.Repeat([]byte("d"), size), a.Data)
			assert.Equal(t, len(a.Data), cap(a.Data), "the capacity of the Data a Get returns")
			grown := append(a.Data, "appended"...)
			grown[0] = 'X' // a new array, as the capacity was full
			assert.Equal(t, memRefPrefix+key, ref, "the reference, after an append to the Data")

			again, err := m.Put(ctx, key, Asset{Data: []byte("new")})
			require.NoError(t, err)
			assert.Equal(t, ref, again)
			require.True(t, m.Delete(ref))
			assert.Equal(t, memRefPrefix+key, ref, "the reference, after its asset was replaced and deleted")
			assert.Equal(t, bytes.Repeat([]byte("d"), size), a.Data, "the Data a Get returned, after the asset was replaced and deleted")
		})
	}
}
