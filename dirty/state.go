package dirty

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/regengraph/regen/graph"
)

// Status is where a node stands.
type Status uint8

// The statuses. The zero value is StatusMissing: a node never generated.
const (
	// StatusMissing: never generated.
	StatusMissing Status = iota
	// StatusClean: its asset is stored and made from its current inputs.
	StatusClean
	// StatusDirty: it must be regenerated (an edit, or a result superseded).
	StatusDirty
	// StatusRunning: a run is generating it. Found at rest, it means a run
	// was interrupted: [Compute] takes it so ([ReasonInterrupted]).
	StatusRunning
	// StatusFailed: its last attempt failed.
	StatusFailed
	// StatusCancelled: a cancelled run interrupted it.
	StatusCancelled
	numStatus
)

var statusNames = [...]string{"missing", "clean", "dirty", "running", "failed", "cancelled"}

// String returns the status's name: "missing", "clean", "dirty",
// "running", "failed" or "cancelled".
func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// MarshalText returns the status's name.
func (s Status) MarshalText() ([]byte, error) {
	if s >= numStatus {
		return nil, fmt.Errorf("dirty: invalid status %d", uint8(s))
	}
	return []byte(statusNames[s]), nil
}

// UnmarshalText parses a status's name. Any other text is a
// [*NameError] that names the statuses, and leaves s unchanged.
func (s *Status) UnmarshalText(b []byte) error {
	for i, name := range statusNames {
		if string(b) == name {
			*s = Status(i)
			return nil
		}
	}
	return &NameError{Of: "status", Name: string(b)}
}

// State is what is recorded about one node. The executor and the state
// stores keep it.
type State struct {
	// Status is where the node stands.
	Status Status `json:"status"`
	// Rev is the revision of the node's own parameters; an edit bumps it.
	// A mark of [ReasonEdited] does not: the executor, or a host's own
	// runner, bumps and saves it before the node runs.
	Rev int64 `json:"rev"`
	// InputHash is the [InputHash] that the last good result was made from.
	InputHash string `json:"inputHash,omitempty"`
	// OutputHash is the content hash of the last good result.
	OutputHash string `json:"outputHash,omitempty"`
	// AssetRef locates the last good result in the asset store.
	AssetRef string `json:"assetRef,omitempty"`
	// Attempts counts the attempts of the latest run of the node.
	Attempts int `json:"attempts,omitempty"`
	// LastError is the error of the last failed attempt, or "".
	LastError string `json:"lastError,omitempty"`
	// UpdatedAt is when the state last changed.
	UpdatedAt time.Time `json:"updatedAt"`
}

// InputHash returns the hash of a node's inputs: its own parameters
// revision and its dependencies' output hashes, in dependency order. A
// result made from the same inputs is the same result, which is what lets
// the executor skip work (early cutoff). It is a hex SHA-256 over a
// length-prefixed encoding, so no two different inputs share an encoding.
// The encoding is versioned (its tag is "regen-input-v1"), and the same
// inputs give the same hash in every release: a new encoding would make
// every stored InputHash look stale, and regenerate every node, so it
// would come only with a new tag, called out as a breaking change.
// TestInputHash pins a few.
func InputHash(rev int64, depOutputHashes []string) string {
	var out [2 * sha256.Size]byte
	return string(AppendInputHash(out[:0], rev, depOutputHashes))
}

// AppendInputHash appends [InputHash] of the same inputs to b, and
// returns the extended slice.
func AppendInputHash(b []byte, rev int64, depOutputHashes []string) []byte {
	// The encoding is built in one buffer, on the stack when it is small.
	size := len(inputHashTag) + 8
	for _, d := range depOutputHashes {
		size += 8 + len(d)
	}
	var stack [512]byte
	e := stack[:0]
	if size > len(stack) {
		e = make([]byte, 0, size)
	}
	e = append(e, inputHashTag...)
	e = binary.BigEndian.AppendUint64(e, uint64(rev))
	for _, d := range depOutputHashes {
		e = binary.BigEndian.AppendUint64(e, uint64(len(d)))
		e = append(e, d...)
	}
	sum := sha256.Sum256(e)
	return hex.AppendEncode(b, sum[:])
}

const inputHashTag = "regen-input-v1"

// States is the state of every node of one graph, indexed by [graph.Node].
// It keeps a compact status column and per-status counts beside the full
// records, so that finding the nodes that are not clean costs nothing on
// a clean graph and one byte a node otherwise. The full records are made
// at the first [States.Set] of a State with more than a Status: until
// then, as for a host that records statuses alone, a States costs one
// byte a node, not a record (about 110 bytes) a node. Make it with
// [NewStates] of the graph's Len; the zero value is the states of no
// node, as NewStates(0) is. A States is not safe for concurrent
// mutation. It has no JSON form ([States.MarshalJSON]).
//
// A node out of range (below 0, or not below Len) has no state: Get and
// Status answer for it what they answer for a node never recorded,
// missing, and Set refuses it with an error wrapping
// [ErrNodeOutOfRange], recording nothing. None of them panics.
type States struct {
	status []Status
	// recs are the full records, or nil while every state set was a
	// Status alone: a node's record is then State{Status: status[n]}.
	recs   []State
	counts [numStatus]int
}

// NewStates returns the states of n nodes, all missing. An n below 0
// gives the states of no node, as 0 does: Compute then refuses them for
// any graph with [ErrStatesMismatch].
func NewStates(n int) *States {
	n = max(n, 0)
	s := &States{status: make([]Status, n)}
	s.counts[StatusMissing] = n
	return s
}

// Len returns the number of nodes.
func (s *States) Len() int { return len(s.status) }

// ErrNodeOutOfRange is wrapped by the error of [States.Set] of a node
// that the states have not.
var ErrNodeOutOfRange = errors.New("dirty: node out of range")

// has reports whether n is one of the states' nodes.
func (s *States) has(n graph.Node) bool { return n >= 0 && int64(n) < int64(len(s.status)) }

// Get returns node n's state: the zero State, missing, for a node out of
// range, as for a node never recorded.
func (s *States) Get(n graph.Node) State {
	switch {
	case !s.has(n):
		return State{}
	case s.recs == nil:
		return State{Status: s.status[n]}
	}
	return s.recs[n]
}

// Status returns node n's status: StatusMissing for a node out of range,
// as for a node never recorded.
func (s *States) Status(n graph.Node) Status {
	if !s.has(n) {
		return StatusMissing
	}
	return s.status[n]
}

// Set records node n's state. An out-of-range status is recorded as
// StatusDirty, so that it is regenerated rather than trusted. A node out
// of range (a States made for another graph, say) is refused with an
// error wrapping [ErrNodeOutOfRange] that names the node and the
// states' range, and nothing is recorded; Set returns nil otherwise.
func (s *States) Set(n graph.Node, st State) error {
	if !s.has(n) {
		if len(s.status) == 0 {
			return fmt.Errorf("%w: node %d: the states have no node: make them with NewStates of the graph's Len", ErrNodeOutOfRange, n)
		}
		return fmt.Errorf("%w: node %d: the states have nodes 0 to %d: make them with NewStates of the graph's Len", ErrNodeOutOfRange, n, len(s.status)-1)
	}
	if st.Status >= numStatus {
		st.Status = StatusDirty
	}
	s.counts[s.status[n]]--
	s.counts[st.Status]++
	s.status[n] = st.Status
	if s.recs == nil {
		if st == (State{Status: st.Status}) {
			return nil
		}
		s.recs = make([]State, len(s.status))
		for i, status := range s.status {
			s.recs[i].Status = status
		}
	}
	s.recs[n] = st
	return nil
}

// Count returns how many nodes have status st.
func (s *States) Count(st Status) int {
	if st >= numStatus {
		return 0
	}
	return s.counts[st]
}

// ErrNoJSONForm is the error of encoding a [States] or a [Set] as JSON:
// neither has a JSON form, and encoding/json would write {} for their
// unexported fields, silently.
var ErrNoJSONForm = errors.New("dirty: no JSON form")

// MarshalJSON refuses to encode s, with an error wrapping
// [ErrNoJSONForm]: a States has no JSON form. Encode each node's
// [State] (States.Get), which has one, under its node ID. Its receiver
// is a value, so that a States held by value is refused too.
func (s States) MarshalJSON() ([]byte, error) {
	return nil, fmt.Errorf("%w: a States has none; encode each node's State (States.Get), which has one, under its node ID (graph.Graph.NodeID)", ErrNoJSONForm)
}

// Clone returns a deep copy of s.
func (s *States) Clone() *States {
	c := *s
	c.status = append([]Status(nil), s.status...)
	if s.recs != nil {
		c.recs = append([]State(nil), s.recs...)
	}
	return &c
}
