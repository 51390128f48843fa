package query

import "sort"

// The lock resource's fields, as Ganeti's gnt-debug locks asks for them.
var lockFields = []FieldDef{
	{Name: "name", Title: "Name", Kind: KindText, Doc: "Lock name"},
	{Name: "mode", Title: "Mode", Kind: KindOther, Doc: "Mode in which the lock is currently acquired (exclusive or shared)"},
	{Name: "owner", Title: "Owner", Kind: KindOther, Doc: "Current lock owner(s)"},
	{Name: "pending", Title: "Pending", Kind: KindOther, Doc: "Threads waiting for the lock"},
}

// LockFields returns the lock field definitions sorted by name.
func LockFields() []FieldDef {
	out := append([]FieldDef(nil), lockFields...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// IsLockField reports whether name is a field of the lock resource.
func IsLockField(name string) bool {
	for _, f := range lockFields {
		if f.Name == name {
			return true
		}
	}
	return false
}

// LookupLockFields is LookupJobFields for the lock resource.
func LookupLockFields(names []string) []FieldDef {
	out := make([]FieldDef, 0, len(names))
	for _, n := range names {
		def := UnknownField(n)
		for _, f := range lockFields {
			if f.Name == n {
				def = f
			}
		}
		out = append(out, def)
	}
	return out
}
