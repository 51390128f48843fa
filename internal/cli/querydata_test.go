package cli

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The fast cell decoder gives exactly what encoding/json with UseNumber
// gives.
func TestQueryDataMatchesEncodingJSON(t *testing.T) {
	data := `[[[0,6040],[0,"success"],[0,["TEST_DELAY(1.0e-2)"]],[0,["a","b,c"]],[3,null],[1,null],[0,-1.5e-3]],
		[[0,"quote \" inside"],[0,["back\\slash"]],[0,[]],[0,[1,2]],[0,{"a":1}],[0,true],[0,"ünï"],[0,[["x"]]],[0,""],[0,[""]],
		[0,["a\",\"b"]],[0,[1795758165,207640]],[0,[[1,[1795758385,958281],"message"," - INFO: x"]]]],
		[]]`
	var fast queryData
	if err := json.Unmarshal([]byte(data), &fast); err != nil {
		t.Fatal(err)
	}
	var slow [][]any
	if err := decodeJSON([]byte(data), &slow); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(slow, [][]any(fast)); diff != "" {
		t.Fatal(diff)
	}
	for _, bad := range []string{`{}`, `[{}]`, `[[1]`} {
		var d queryData
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}
