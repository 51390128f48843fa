package format

import (
	"io"
	"strings"
	"unicode/utf8"
)

// Column describes one column of a Table.
type Column struct {
	// Title is the header text ("ID", "Status").
	Title string
	// AlignRight right-aligns the column, header included (" ID"); Ganeti
	// does this for numeric fields.
	AlignRight bool
}

// Table is the layout of gnt-job list and the other gnt-* listings.
//
// Without a separator, every column is as wide as its widest cell (header
// included, counted in characters) and columns are joined by one space;
// left-aligned cells are padded on the right, right-aligned ones on the
// left, and a left-aligned last column is not padded, so lines carry no
// trailing blanks from it. With a separator (--separator), cells are joined
// with it and never padded.
type Table struct {
	Columns []Column
	// Rows holds the cells, already formatted (see FormatJobListValue). A
	// row shorter than Columns is completed with empty cells; extra cells
	// are ignored.
	Rows [][]string
	// NoHeaders omits the header line (--no-headers).
	NoHeaders bool
	// Separator, when non-nil, is put between cells instead of padding
	// (--separator=S; an empty separator is valid and joins cells
	// directly). Use Sep to take the address of a literal.
	Separator *string
}

// Sep returns &s, for Table.Separator.
func Sep(s string) *string { return &s }

// Lines returns the table's lines, without newlines.
func (t *Table) Lines() []string {
	ncol := len(t.Columns)
	data := make([][]string, 0, len(t.Rows)+1)
	if !t.NoHeaders {
		hdr := make([]string, ncol)
		for i, c := range t.Columns {
			hdr[i] = c.Title
		}
		data = append(data, hdr)
	}
	for _, r := range t.Rows {
		row := make([]string, ncol)
		copy(row, r)
		data = append(data, row)
	}
	if t.Separator != nil {
		out := make([]string, len(data))
		for i, row := range data {
			out[i] = strings.Join(row, *t.Separator)
		}
		return out
	}
	width := make([]int, ncol)
	for _, row := range data {
		for i, cell := range row {
			width[i] = max(width[i], utf8.RuneCountInString(cell))
		}
	}
	if ncol > 0 && !t.Columns[ncol-1].AlignRight {
		width[ncol-1] = 0
	}
	out := make([]string, len(data))
	var b strings.Builder
	for i, row := range data {
		b.Reset()
		for j, cell := range row {
			if j > 0 {
				b.WriteByte(' ')
			}
			pad := width[j] - utf8.RuneCountInString(cell)
			if t.Columns[j].AlignRight && pad > 0 {
				b.WriteString(strings.Repeat(" ", pad))
			}
			b.WriteString(cell)
			if !t.Columns[j].AlignRight && pad > 0 {
				b.WriteString(strings.Repeat(" ", pad))
			}
		}
		out[i] = b.String()
	}
	return out
}

// String returns the table's lines, each ending in a newline.
func (t *Table) String() string {
	var b strings.Builder
	for _, l := range t.Lines() {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// WriteTo writes the table's lines, each ending in a newline.
func (t *Table) WriteTo(w io.Writer) (int64, error) {
	n, err := io.WriteString(w, t.String())
	return int64(n), err
}
