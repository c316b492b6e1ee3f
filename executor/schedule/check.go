package schedule

import (
	"fmt"
	"slices"
	"strings"

	"github.com/regengraph/regen/graph"
)

// Check checks c against the templates of the graphs that the machines
// of c will run, at a driver's start-up, as the executor's
// CheckTemplates checks its Options: [New] takes a rate, a cap, a window
// or a kind that shares calls that its plan has not, since one Config
// serves the plans of many rounds and graphs (and a rate of a key the
// plan has not carries inherited starts, [Machine.Inherit]), so that a
// misspelt name ("tss" for "tts") would limit nothing without a word.
//
// It returns nil when c is one that New takes (as [Config.MarshalJSON]
// checks it), every key of [Config.Rates] and [Config.Caps] is the batch
// key of a kind of the templates, and every kind of [Config.Windows] and
// [Config.Shared] is a kind of the templates with a batch key (a window,
// and a group, apply to bulk calls, which are of one key). Otherwise it
// returns a [*ConfigError] for the first field, in the Config's order,
// that names what the templates do not have (the first 8 of them,
// sorted) and what they allow. Pass all the templates that the driver
// serves: a key that only one of them uses is not unknown. A template
// that graph.Template.Validate refuses is an error wrapping
// [ErrInvalidConfig] and its error, and so is a call with none.
// It costs O(T log T + C log C) for T kinds in the templates and C
// names in c.
func (c Config) Check(templates ...graph.Template) error {
	if len(templates) == 0 {
		return fmt.Errorf("%w: Config.Check of no template: pass the templates of the graphs the machines run", ErrInvalidConfig)
	}
	keys, kinds := map[string]bool{}, map[string]bool{}
	for i, t := range templates {
		if err := t.Validate(); err != nil {
			return fmt.Errorf("%w: template %d of %d: %w", ErrInvalidConfig, i+1, len(templates), err)
		}
		for _, k := range t.Kinds {
			if k.BatchKey != "" {
				keys[k.BatchKey], kinds[k.Name] = true, true
			}
		}
	}
	if err := c.check(); err != nil {
		return err
	}
	const (
		keyWhat  = "no kind of the templates has %s"
		kindWhat = "no kind of the templates has %s, or %s no batch key"
	)
	allowedKeys := "want batch keys of the templates, " + names(sortedKeys(keys))
	allowedKinds := "want kinds with a batch key, " + names(sortedKeys(kinds))
	if len(keys) == 0 {
		allowedKeys = "the templates have no batch key"
		allowedKinds = "no kind of the templates has a batch key"
	}
	if u := unknown(sortedKeys(c.Rates), keys); len(u) > 0 {
		return badConfig("Rates", "%s %s: %s (a rate of a key no kind has limits nothing): %s",
			plural(u, "a rate for batch key", "rates for batch keys"), names(u), pronoun(u, keyWhat), allowedKeys)
	}
	if u := unknown(sortedKeys(c.Caps), keys); len(u) > 0 {
		return badConfig("Caps", "%s %s: %s (a cap of a key no kind has limits nothing): %s",
			plural(u, "a cap for batch key", "caps for batch keys"), names(u), pronoun(u, keyWhat), allowedKeys)
	}
	if u := unknown(sortedKeys(c.Windows), kinds); len(u) > 0 {
		return badConfig("Windows", "%s %s: %s (a window holds back a bulk call of a batch key): %s",
			plural(u, "a window for kind", "windows for kinds"), names(u), pronoun(u, kindWhat), allowedKinds)
	}
	var shared []string
	for _, grp := range c.Shared {
		shared = append(shared, grp...)
	}
	slices.Sort(shared)
	if u := unknown(shared, kinds); len(u) > 0 {
		return badConfig("Shared", "%s %s in %s of Shared: %s (kinds share the bulk calls of a batch key): %s",
			plural(u, "kind", "kinds"), names(u), plural(u, "a group", "groups"), pronoun(u, kindWhat), allowedKinds)
	}
	return nil
}

// unknown returns the names, sorted, that known has not.
func unknown(sorted []string, known map[string]bool) []string {
	var out []string
	for _, n := range sorted {
		if !known[n] {
			out = append(out, n)
		}
	}
	return out
}

// maxNamed is the most names a message of Check lists.
const maxNamed = 8

// names quotes the first maxNamed of the sorted names, each cut, and
// says how many more there are.
func names(sorted []string) string {
	var b strings.Builder
	for i, n := range sorted[:min(len(sorted), maxNamed)] {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", cut(n))
	}
	if more := len(sorted) - maxNamed; more > 0 {
		fmt.Fprintf(&b, " and %d more", more)
	}
	return b.String()
}

func plural(names []string, one, many string) string {
	if len(names) == 1 {
		return one
	}
	return many
}

// pronoun fills format's verbs with "it" and "it has", or "them" and
// "they have".
func pronoun(names []string, format string) string {
	it, has := "it", "it has"
	if len(names) > 1 {
		it, has = "them", "they have"
	}
	if strings.Count(format, "%s") == 1 {
		return fmt.Sprintf(format, it)
	}
	return fmt.Sprintf(format, it, has)
}
