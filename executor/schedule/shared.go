package schedule

import (
	"encoding/binary"
	"slices"
	"unicode/utf8"
)

// checkShared returns a *ConfigError for the first thing wrong with
// c.Shared, in its order, or nil.
func (c Config) checkShared() error {
	in := map[string]int{} // kind: its group
	for gi, grp := range c.Shared {
		if len(grp) < 2 {
			word := "kinds"
			if len(grp) == 1 {
				word = "kind"
			}
			return badConfig("Shared", "shared[%d] has %d %s: want 2 or more (a kind's calls are its own already)", gi, len(grp), word)
		}
		for _, kind := range grp {
			if !utf8.ValidString(kind) {
				return badConfig("Shared", "a shared kind %q, which is not UTF-8: %s", cut(kind), notUTF8)
			}
			if first, ok := in[kind]; ok {
				return badConfig("Shared", "kind %q is in shared[%d] and shared[%d]: give each kind once, in one group", cut(kind), first, gi)
			}
			in[kind] = gi
		}
	}
	return nil
}

// share sets m.shares from c.Shared: by kind, the first kind of its
// group, in the template's order, with its batch key and a node in the
// plan; nil if no kind shares calls with another. Called by build once
// the plan's nodes are known.
func (m *Machine) share(c Config) {
	if len(c.Shared) == 0 {
		return
	}
	kinds := m.g.Kinds()
	byName := make(map[string]int, kinds)
	for k := range kinds {
		byName[m.g.KindName(k)] = k
	}
	planned := make([]bool, kinds)
	for _, n := range m.nodes {
		planned[m.g.KindOf(n)] = true
	}
	shares := make([]int32, kinds)
	for k := range shares {
		shares[k] = int32(k)
	}
	used := false
	for _, grp := range c.Shared {
		first := map[string]int32{} // batch key: the group's first kind with it
		ks := make([]int, 0, len(grp))
		for _, name := range grp {
			if k, ok := byName[name]; ok && planned[k] {
				ks = append(ks, k)
			}
		}
		slices.Sort(ks)
		for _, k := range ks {
			key, _ := m.g.BatchKey(k)
			if key == "" {
				continue
			}
			if f, ok := first[key]; ok {
				shares[k], used = f, true
			} else {
				first[key] = int32(k)
			}
		}
	}
	if used {
		m.shares = shares
	}
}

// callKind returns the kind whose calls kind k's nodes share: k itself
// but for a kind that shares calls (Config.Shared).
func (m *Machine) callKind(k int) int {
	if m.shares == nil {
		return k
	}
	return int(m.shares[k])
}

// appendShared appends to b the kinds' sharing of calls as the machine
// took it, for the fingerprint and the "shared" part of parts: nothing
// when no kind shares calls, so that a snapshot's fingerprint is the same
// as before Config.Shared came.
func (m *Machine) appendShared(b []byte) []byte {
	if m.shares == nil {
		return b
	}
	b = append(b, "shared\x00"...)
	b = binary.AppendVarint(b, int64(len(m.shares)))
	for _, k := range m.shares {
		b = binary.AppendVarint(b, int64(k))
	}
	return b
}
