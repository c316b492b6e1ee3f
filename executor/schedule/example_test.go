package schedule_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
)

// A driver loop over a fresh 20-second lecture with 3 workers: it starts
// whatever the machine allows, and when nothing more may start, the
// oldest running node completes. A real driver runs the nodes in workers
// and passes time.Now; this one stands in for them with a queue.
func Example() {
	g, err := graph.Build(graph.Lecture(), 20)
	if err != nil {
		panic(err)
	}
	set, err := dirty.Compute(g, dirty.Input{})
	if err != nil {
		panic(err)
	}
	p := planner.New(set)
	m, err := schedule.New(p, schedule.Config{Workers: 3})
	if err != nil {
		panic(err)
	}
	var now time.Time
	var running []graph.Node
	begun := make([]bool, len(p.Stages))
	for !m.Done() {
		if st, ok := m.Next(now); ok {
			if !begun[st.Stage] { // the first node of its stage
				begun[st.Stage] = true
				fmt.Println(p.Summary(st.Stage))
			}
			fmt.Println("  start", g.NodeID(st.Node))
			running = append(running, st.Node)
			continue
		}
		n := running[0]
		running = running[1:]
		r, err := m.Succeed(n)
		if err != nil {
			panic(err)
		}
		fmt.Println("  done ", g.NodeID(n))
		for _, s := range r.StagesFinished {
			fmt.Printf("Stage %d finished\n", s)
		}
	}
	// Output:
	// Stage 0: Generating 1 script node
	//   start script
	//   done  script
	// Stage 0 finished
	// Stage 1: Generating 2 asset:narration nodes in batches of 4, 2 asset:image nodes in batches of 5, 1 asset:music node
	//   start asset:narration:segment[0]
	//   start asset:narration:segment[1]
	//   start asset:image:segment[0]
	//   done  asset:narration:segment[0]
	//   start asset:image:segment[1]
	//   done  asset:narration:segment[1]
	//   start asset:music
	//   done  asset:image:segment[0]
	// Stage 2: Generating 2 asset:video nodes in batches of 3
	//   start asset:video:segment[0]
	//   done  asset:image:segment[1]
	//   start asset:video:segment[1]
	//   done  asset:music
	// Stage 1 finished
	//   done  asset:video:segment[0]
	//   done  asset:video:segment[1]
	// Stage 2 finished
	// Stage 3: Generating 1 timeline node
	//   start timeline
	//   done  timeline
	// Stage 3 finished
}

// A failed image skips its video and the timeline, each once; the other
// branches go on. The timeline's stage settles first, but stages are
// reported finished in order.
func ExampleMachine_Fail() {
	g, _ := graph.Build(graph.Lecture(), 20)
	set, _ := dirty.Compute(g, dirty.Input{})
	m, _ := schedule.New(planner.New(set), schedule.Config{})
	var now time.Time
	start := func() (started []graph.Node) {
		for {
			st, ok := m.Next(now)
			if !ok {
				return started
			}
			started = append(started, st.Node)
		}
	}
	for _, n := range start() { // the script
		m.Succeed(n)
	}
	image1, _ := g.Lookup("asset:image:segment[1]")
	for _, n := range start() { // stage 1: all but image 1 succeed
		if n != image1 {
			m.Succeed(n)
		}
	}
	r, _ := m.Fail(image1)
	for _, n := range r.Skipped {
		fmt.Println("skipped", g.NodeID(n))
	}
	fmt.Println("stages finished:", r.StagesFinished)
	for _, n := range start() {
		fmt.Println("start", g.NodeID(n))
		r, _ = m.Succeed(n)
		fmt.Println("stages finished:", r.StagesFinished)
	}
	fmt.Println("done:", m.Done())
	// Output:
	// skipped asset:video:segment[1]
	// skipped timeline
	// stages finished: [1]
	// start asset:video:segment[0]
	// stages finished: [2 3]
	// done: true
}

// A batch window for the lecture's videos, 3 at a time: a bulk call
// waits, up to the window, for more videos to become ready than the
// first, and starts at once when it is full or no more can come. A driver
// passes its clock to SucceedAt, so that a window counts from when its
// video became ready, and asks again at Wake.
func ExampleConfig_windows() {
	g, _ := graph.Build(graph.Lecture(), 40)
	set, _ := dirty.Compute(g, dirty.Input{})
	m, _ := schedule.New(planner.New(set), schedule.Config{
		Windows: map[string]time.Duration{graph.KindVideo: 5 * time.Second}})
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	node := func(id string) graph.Node { n, _ := g.Lookup(id); return n }
	// call starts a bulk call of videos, if the machine lets one start.
	call := func(now time.Time) {
		st, ok := m.Next(now)
		if !ok {
			wake, _ := m.Wake()
			fmt.Printf("%v: no call; ask again at %v\n", now.Sub(t0), wake.Sub(t0))
			return
		}
		ids := []string{g.NodeID(st.Node)}
		for {
			more, ok := m.More(now, st.Node)
			if !ok {
				break
			}
			ids = append(ids, g.NodeID(more.Node))
		}
		fmt.Printf("%v: a call of %v\n", now.Sub(t0), ids)
	}
	m.Next(t0) // the script
	m.SucceedAt(node("script"), t0)
	for { // the narrations, images and music
		if _, ok := m.Next(t0); !ok {
			break
		}
	}
	// ready ends a segment's narration and image at 'at' seconds: its
	// video is ready.
	ready := func(seg, at int) time.Time {
		now := t0.Add(time.Duration(at) * time.Second)
		m.SucceedAt(node(fmt.Sprintf("asset:narration:segment[%d]", seg)), now)
		m.SucceedAt(node(fmt.Sprintf("asset:image:segment[%d]", seg)), now)
		return now
	}
	call(ready(0, 0))             // 3 videos could start, 1 is ready
	call(ready(1, 1))             // 2 are ready
	call(t0.Add(5 * time.Second)) // the window of video 0 ends
	call(ready(2, 6))             // one slot left: a full call
	// Output:
	// 0s: no call; ask again at 5s
	// 1s: no call; ask again at 5s
	// 5s: a call of [asset:video:segment[0] asset:video:segment[1]]
	// 6s: a call of [asset:video:segment[2]]
}

// A driver that must start over, as a workflow that continues as new,
// keeps a snapshot of the machine as JSON instead of the calls made to
// it, and restores a machine from it with the same plan and Config: the
// new machine goes on where the old one stood, with the same nodes
// running, the same ones ready, in the same order, and the same starts
// in its rate's window.
func ExampleRestore() {
	g, err := graph.Build(graph.Lecture(), 20)
	if err != nil {
		panic(err)
	}
	set, err := dirty.Compute(g, dirty.Input{})
	if err != nil {
		panic(err)
	}
	p := planner.New(set)
	cfg := schedule.Config{Workers: 3, Rates: map[string]schedule.Rate{graph.KindImage: {Starts: 1, Per: time.Minute}}}
	m, err := schedule.New(p, cfg)
	if err != nil {
		panic(err)
	}
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	script, _ := m.Next(now)
	if _, err := m.SucceedAt(script.Node, now); err != nil {
		panic(err)
	}
	for range 3 {
		st, _ := m.Next(now)
		fmt.Println("start", g.NodeID(st.Node))
	}
	data, err := json.Marshal(m.Snapshot())
	if err != nil {
		panic(err)
	}
	fmt.Println(elide(data))

	// Later, in another process: the same plan and Config, and the JSON.
	var s schedule.Snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		panic(err)
	}
	again, err := schedule.Restore(p, cfg, s)
	if err != nil {
		panic(err)
	}
	for _, n := range again.RunningNodes()[:2] { // the narrations
		if _, err := again.Succeed(n); err != nil {
			panic(err)
		}
	}
	now = now.Add(time.Second)
	for {
		st, ok := again.Next(now)
		if !ok {
			break
		}
		fmt.Println("start", g.NodeID(st.Node))
	}
	wake, _ := again.Wake()
	fmt.Println("the next image may start in", wake.Sub(now))
	// Output:
	// start asset:narration:segment[0]
	// start asset:narration:segment[1]
	// start asset:image:segment[0]
	// {"version":2,"fingerprint":"…","parts":{"plan":"…","mode":"…","workers":"…","caps":"…","rates":"…","windows":"…","maxBatch":"…"},"states":"sRRRrpprp","ready":[4,7],"running":[{"node":1},{"node":2},{"node":3,"rateStart":"2025-01-01T00:00:00Z"}],"rates":[{"key":"asset:image","starts":["2025-01-01T00:00:00Z"]}]}
	// start asset:music
	// the next image may start in 59s
}

// elide returns a snapshot's JSON with its fingerprint and the digests
// of its parts cut to "…".
func elide(data []byte) string {
	var f struct {
		Fingerprint string
		Parts       map[string]string
	}
	if err := json.Unmarshal(data, &f); err != nil {
		panic(err)
	}
	out := strings.Replace(string(data), f.Fingerprint, "…", 1)
	for _, d := range f.Parts {
		out = strings.Replace(out, `"`+d+`"`, `"…"`, 1)
	}
	return out
}

// A driver that plans a new round of what is left, as a workflow that
// continues as new with a new plan, carries its providers' quotas over:
// the next round's machine inherits the starts that the old one's rates
// still count, which the driver keeps as JSON between the rounds. A
// round whose plan has no node of a key (only the music edited) passes
// that key's starts on, so that the round after it waits for the quota
// too.
func ExampleMachine_Inherit() {
	g, err := graph.Build(graph.Lecture(), 40)
	if err != nil {
		panic(err)
	}
	// plan is a round's plan, with the nodes given edited.
	plan := func(ids ...string) *planner.Plan {
		states := dirty.NewStates(g.Len())
		for n := range g.Len() {
			if err := states.Set(graph.Node(n), dirty.State{Status: dirty.StatusClean}); err != nil {
				panic(err)
			}
		}
		var marks []dirty.Mark
		for _, id := range ids {
			marks = append(marks, dirty.Mark{ID: id, Reason: dirty.ReasonEdited})
		}
		set, err := dirty.Compute(g, dirty.Input{States: states, Marks: marks})
		if err != nil {
			panic(err)
		}
		return planner.New(set)
	}
	cfg := schedule.Config{Rates: map[string]schedule.Rate{graph.KindImage: {Starts: 2, Per: time.Minute}}}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	// round runs a plan from now, with the starts the last round left, as
	// JSON, and returns the JSON of the starts it leaves at its end.
	round := func(now time.Time, p *planner.Plan, carried []byte) []byte {
		m, err := schedule.New(p, cfg)
		if err != nil {
			panic(err)
		}
		var starts []schedule.RateStarts
		if err := json.Unmarshal(carried, &starts); err != nil {
			panic(err)
		}
		if err := m.Inherit(starts); err != nil {
			panic(err)
		}
		var started []string
		for !m.Done() {
			if st, ok := m.Next(now); ok {
				started = append(started, g.NodeID(st.Node))
				continue
			}
			if m.Running() == 0 { // a rate holds the rest back
				wake, _ := m.Wake()
				fmt.Printf("%s: %v; the rest waits until %s\n", now.Sub(t0), started, wake.Sub(t0))
				now, started = wake, nil
			}
			for _, n := range m.RunningNodes() {
				if _, err := m.Succeed(n); err != nil {
					panic(err)
				}
			}
		}
		fmt.Printf("%s: %v\n", now.Sub(t0), started)
		out, err := json.Marshal(m.RateStarts(now))
		if err != nil {
			panic(err)
		}
		fmt.Println("  carried:", string(out))
		return out
	}
	carried := round(t0, plan("asset:image:segment[0]", "asset:image:segment[1]"), []byte("[]"))
	carried = round(t0.Add(10*time.Second), plan(graph.KindMusic), carried)
	round(t0.Add(20*time.Second), plan("asset:image:segment[2]"), carried)
	// Output:
	// 0s: [asset:image:segment[0] asset:image:segment[1] asset:video:segment[0] asset:video:segment[1] timeline]
	//   carried: [{"key":"asset:image","starts":["2025-01-01T00:00:00Z","2025-01-01T00:00:00Z"]}]
	// 10s: [asset:music timeline]
	//   carried: [{"key":"asset:image","starts":["2025-01-01T00:00:00Z","2025-01-01T00:00:00Z"]}]
	// 20s: []; the rest waits until 1m0s
	// 1m0s: [asset:image:segment[2] asset:video:segment[2] timeline]
	//   carried: [{"key":"asset:image","starts":["2025-01-01T00:01:00Z"]}]
}

// A driver that retries a failed attempt itself charges each retry's
// call to the node's rate before making it, so that its provider, which
// counts every call, sees no more than the rate allows: here 2 images a
// minute, the first of which fails once.
func ExampleMachine_ChargeAt() {
	g, err := graph.Build(graph.Lecture(), 40)
	if err != nil {
		panic(err)
	}
	states := dirty.NewStates(g.Len())
	for n := range g.Len() {
		if err := states.Set(graph.Node(n), dirty.State{Status: dirty.StatusClean}); err != nil {
			panic(err)
		}
	}
	marks := []dirty.Mark{{ID: "asset:image:segment[0]", Reason: dirty.ReasonEdited}, {ID: "asset:image:segment[1]", Reason: dirty.ReasonEdited}}
	set, err := dirty.Compute(g, dirty.Input{States: states, Marks: marks})
	if err != nil {
		panic(err)
	}
	m, err := schedule.New(planner.New(set), schedule.Config{Rates: map[string]schedule.Rate{graph.KindImage: {Starts: 2, Per: time.Minute}}})
	if err != nil {
		panic(err)
	}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var images []graph.Node
	for {
		st, ok := m.Next(t0)
		if !ok {
			break
		}
		fmt.Printf("0s: call %s\n", g.NodeID(st.Node))
		images = append(images, st.Node)
	}
	// The first image's call fails at 5s; its retry is due 2s later.
	retry, now := images[0], t0.Add(7*time.Second)
	for {
		ok, err := m.ChargeAt(retry, now)
		if err != nil {
			panic(err)
		}
		if ok {
			break
		}
		wait := m.RateWait(graph.KindImage, now)
		fmt.Printf("%s: the retry waits %s for the rate\n", now.Sub(t0), wait)
		now = now.Add(wait)
	}
	fmt.Printf("%s: call %s again\n", now.Sub(t0), g.NodeID(retry))
	for _, rs := range m.RateStarts(now) {
		fmt.Print("the rate counts calls of ", rs.Key, " at")
		for _, t := range rs.Starts {
			fmt.Print(" ", t.Sub(t0))
		}
		fmt.Println()
	}
	// Output:
	// 0s: call asset:image:segment[0]
	// 0s: call asset:image:segment[1]
	// 7s: the retry waits 53s for the rate
	// 1m0s: call asset:image:segment[0] again
	// the rate counts calls of asset:image at 1m0s
}
