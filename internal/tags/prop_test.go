package tags

import (
	"slices"
	"sort"
	"testing"

	"pgregory.net/rapid"
)

// Any sequence of OP_TAGS_SET and OP_TAGS_DEL keeps every object's tags
// sorted, unique and valid, and matches a plain set model: a change that
// is refused changes nothing, one that is made adds or removes exactly its
// tags.
func TestAddRemoveModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		objs := []string{"", "n1", "n2"}
		// Mostly valid tags from a small alphabet (so removals hit),
		// sometimes invalid ones.
		tag := rapid.OneOf(rapid.StringMatching(`[ab:.-]{1,3}`), rapid.SampledFrom([]string{"", "a b", "x,y", "é"}))
		var d Doc
		model := map[string]map[string]bool{}
		for range rapid.IntRange(1, 40).Draw(t, "steps") {
			obj := rapid.SampledFrom(objs).Draw(t, "obj")
			tt := rapid.SliceOfN(tag, 1, 4).Draw(t, "tags")
			add := rapid.Bool().Draw(t, "add")
			before := d.Encode()
			var next Doc
			var err error
			if add {
				next, err = d.Add(obj, tt)
			} else {
				next, err = d.Remove(obj, tt)
			}
			valid := CheckAll(tt) == nil
			if !valid && err == nil {
				t.Fatalf("invalid tags %q accepted", tt)
			}
			if err != nil {
				if string(d.Encode()) != string(before) {
					t.Fatalf("a refused change changed the document")
				}
				if valid && add {
					t.Fatalf("Add(%q) refused: %v", tt, err)
				}
				if valid && !add {
					missing := false
					for _, x := range tt {
						missing = missing || !model[obj][x]
					}
					if !missing {
						t.Fatalf("Remove(%q) of present tags refused: %v", tt, err)
					}
				}
				continue
			}
			if model[obj] == nil {
				model[obj] = map[string]bool{}
			}
			for _, x := range tt {
				model[obj][x] = add
			}
			d = next
			for _, o := range objs {
				got := d.Get(o)
				var want []string
				for x, in := range model[o] {
					if in {
						want = append(want, x)
					}
				}
				sort.Strings(want)
				if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
					t.Fatalf("%q's tags %q, model %q", o, got, want)
				}
				if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
					t.Fatalf("%q's tags not sorted and unique: %q", o, got)
				}
			}
		}
	})
}
