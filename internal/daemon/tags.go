package daemon

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jobq-dev/jobq/internal/buildinfo"
	"github.com/jobq-dev/jobq/internal/cluster"
	"github.com/jobq-dev/jobq/internal/jsonobj"
	"github.com/jobq-dev/jobq/internal/tags"
	"github.com/jobq-dev/jobq/luxi"
	"github.com/jobq-dev/jobq/opcodes"
)

// The cluster-wide settings of this file.
const (
	// tagsKey: the cluster's and the nodes' tags (tags.Doc).
	tagsKey = "tags"
	// identityKey: the cluster's uuid and creation time, set by the first
	// master (Ganeti's cluster uuid and ctime).
	identityKey = "cluster-identity"
)

// clusterIdentity is the setting identityKey.
type clusterIdentity struct {
	UUID  string  `json:"uuid"`
	CTime float64 `json:"ctime"`
}

func (n *nodeRT) identity() clusterIdentity {
	var id clusterIdentity
	if b := n.settings.Get(identityKey); b != nil {
		_ = json.Unmarshal(b, &id)
	}
	return id
}

// ensureIdentity gives the cluster its uuid and creation time when it has
// none (the first master; a cluster made before jobq had them gets them
// at its next master election).
func (n *nodeRT) ensureIdentity(ctx context.Context) {
	if n.identity().UUID != "" {
		return
	}
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	id := clusterIdentity{UUID: fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:]),
		CTime: float64(time.Now().UnixMicro()) / 1e6}
	b, _ := json.Marshal(id)
	if err := n.settings.Set(ctx, identityKey, b); err != nil {
		n.log.Warn("cannot record the cluster's uuid and creation time; the next master tries again", "err", err)
	}
}

// tagsDoc is the stored tags; an unreadable document is logged and read
// as none.
func (n *nodeRT) tagsDoc() tags.Doc {
	d, err := tags.Decode(n.settings.Get(tagsKey))
	if err != nil {
		n.log.Error("the stored tags cannot be read", "err", err)
	}
	return d
}

func tagsErr(err error) error {
	e, ok := err.(*tags.Error)
	if !ok {
		return err
	}
	if e.Kind != "" {
		return &opcodes.Error{Class: e.Class, Args: []any{e.Msg, e.Kind}}
	}
	return &opcodes.Error{Class: e.Class, Args: []any{e.Msg}}
}

// tagsParams are the members of OP_TAGS_SET, OP_TAGS_DEL and
// OP_TAGS_GET: kind ("cluster", "node"), name (the node; null for the
// cluster) and tags.
type tagsParams struct {
	n    *nodeRT
	op   string
	Kind string   `json:"kind"`
	Name *string  `json:"name"`
	Tags []string `json:"tags"`
	node string
}

func (p *tagsParams) Validate() error {
	name := ""
	if p.Name != nil {
		name = *p.Name
	}
	node, err := tags.Target(p.Kind, name, p.n.config().NodeNames())
	if err != nil {
		return tagsErr(err)
	}
	p.node = node
	if p.op != "OP_TAGS_GET" {
		return tagsErr(tags.CheckAll(p.Tags))
	}
	return nil
}

// Exec changes the tags through the log (one change of the cluster's
// settings at a time), or answers them for OP_TAGS_GET. As Ganeti's
// LUTagsSet and LUTagsDel it logs nothing and answers null.
func (p *tagsParams) Exec(ctx context.Context, _ opcodes.Env) (any, error) {
	if p.op == "OP_TAGS_GET" {
		return p.n.tagsDoc().Get(p.node), nil
	}
	p.n.filterMu.Lock()
	defer p.n.filterMu.Unlock()
	d := p.n.tagsDoc()
	var err error
	if p.op == "OP_TAGS_SET" {
		d, err = d.Add(p.node, p.Tags)
	} else {
		d, err = d.Remove(p.node, p.Tags)
	}
	if err != nil {
		return nil, tagsErr(err)
	}
	d.MTime = float64(time.Now().UnixMicro()) / 1e6
	if err := p.n.settings.Set(ctx, tagsKey, d.Encode()); err != nil {
		return nil, opcodes.ExecError("cannot store the tags: %v", err)
	}
	return nil, nil
}

// tagsSearch is OP_TAGS_SEARCH.
type tagsSearch struct {
	n       *nodeRT
	Pattern string `json:"pattern"`
	re      *regexp.Regexp
}

func (p *tagsSearch) Validate() error {
	re, err := tags.CompilePattern(p.Pattern)
	if err != nil {
		return tagsErr(err)
	}
	p.re = re
	return nil
}

func (p *tagsSearch) Exec(context.Context, opcodes.Env) (any, error) {
	return p.n.tagsDoc().Search(p.re, p.n.config().NodeNames()), nil
}

// registerTags adds Ganeti's tag opcodes to the node's opcodes.
func (n *nodeRT) registerTags(reg *opcodes.Registry) error {
	for _, d := range []opcodes.Definition{
		{ID: "OP_TAGS_SET", Required: []string{"kind", "tags"}},
		{ID: "OP_TAGS_DEL", Required: []string{"kind", "tags"}},
		{ID: "OP_TAGS_GET", Required: []string{"kind"}, SummaryField: "name"},
	} {
		id := d.ID
		d.New = func() opcodes.Params { return &tagsParams{n: n, op: id} }
		if err := reg.Register(d); err != nil {
			return err
		}
	}
	return reg.Register(opcodes.Definition{ID: "OP_TAGS_SEARCH", Required: []string{"pattern"}, SummaryField: "pattern",
		New: func() opcodes.Params { return &tagsSearch{n: n} }})
}

// queryTags is LUXI QueryTags(kind, name).
func (n *nodeRT) queryTags(req *luxi.Request) (any, error) {
	var kind string
	var name *string
	if err := req.UnmarshalArgs(&kind, &name); err != nil {
		return nil, badArgs(req.Method, "expected [kind, name]")
	}
	nm := ""
	if name != nil {
		nm = *name
	}
	node, err := tags.Target(kind, nm, n.config().NodeNames())
	if err != nil {
		e := err.(*tags.Error)
		return nil, luxi.NewError(e.Class, e.Msg, e.Kind)
	}
	return n.tagsDoc().Get(node), nil
}

// Ganeti's protocol and configuration versions of the 3.0 series, which
// jobqd speaks to Ganeti's clients (LUXI, RAPI, the job files).
const ganetiVersion = 3000000

// clusterInfo is LUXI QueryClusterInfo (and RAPI's /2/info): Ganeti's
// dictionary, every member Ganeti 3.0.2 answers, in its order. The
// members jobq has a value for carry it (name, master, versions, uuid,
// ctime, mtime, candidate_pool_size, max_running_jobs, max_tracked_jobs,
// tags, the architecture); jobq manages no instances, hypervisors,
// storage or networks, so those members are empty (no hypervisor, no
// parameters, no disk templates, zero ratios).
func (n *nodeRT) clusterInfo(maxRunning int) *jsonobj.Object {
	c := n.config()
	f := n.clusterFacts(maxRunning)
	bi := buildinfo.Get()
	empty := map[string]any{}
	o := &jsonobj.Object{}
	o.Add("software_version", f["software_version"])
	o.Add("protocol_version", f["protocol_version"])
	o.Add("config_version", ganetiVersion)
	o.Add("os_api_version", 0)
	o.Add("export_version", 0)
	o.Add("vcs_version", fmt.Sprintf("(jobq) version %s (commit %s)", bi.Version, bi.Commit))
	o.Add("architecture", architecture())
	o.Add("name", c.Name)
	o.Add("master", c.Master)
	o.Add("default_hypervisor", "")
	o.Add("enabled_hypervisors", []string{})
	o.Add("hvparams", empty)
	o.Add("os_hvp", empty)
	o.Add("beparams", empty)
	o.Add("osparams", empty)
	o.Add("ipolicy", map[string]any{"minmax": []any{}, "std": empty, "spindle-ratio": 0, "vcpu-ratio": 0, "disk-templates": []string{}})
	o.Add("nicparams", empty)
	o.Add("ndparams", empty)
	o.Add("diskparams", empty)
	o.Add("candidate_pool_size", c.CandidatePoolSize)
	o.Add("max_running_jobs", f["max_running_jobs"])
	o.Add("max_tracked_jobs", f["max_tracked_jobs"])
	o.Add("mac_prefix", "")
	o.Add("master_netdev", "")
	o.Add("master_netmask", 0)
	o.Add("use_external_mip_script", false)
	o.Add("volume_group_name", nil)
	o.Add("drbd_usermode_helper", nil)
	o.Add("file_storage_dir", "")
	o.Add("shared_file_storage_dir", "")
	o.Add("gluster_storage_dir", "")
	o.Add("maintain_node_health", false)
	o.Add("ctime", f["ctime"])
	o.Add("mtime", f["mtime"])
	o.Add("uuid", f["uuid"])
	o.Add("tags", f["tags"])
	o.Add("uid_pool", []any{})
	o.Add("default_iallocator", "")
	o.Add("default_iallocator_params", empty)
	o.Add("reserved_lvs", []string{})
	o.Add("primary_ip_version", 4)
	o.Add("prealloc_wipe_disks", false)
	o.Add("hidden_os", []string{})
	o.Add("blacklisted_os", []string{})
	o.Add("enabled_disk_templates", []string{})
	o.Add("install_image", "")
	o.Add("instance_communication_network", "")
	o.Add("zeroing_image", "")
	o.Add("compression_tools", []string{})
	o.Add("enabled_user_shutdown", false)
	o.Add("enabled_data_collectors", empty)
	o.Add("data_collector_interval", empty)
	o.Add("modify_ssh_setup", false)
	o.Add("ssh_key_type", "")
	o.Add("ssh_key_bits", 0)
	return o
}

// clusterFacts are the cluster's facts that jobq has, as
// QueryClusterInfo names them: uuid, ctime and mtime (null before the
// first master recorded them; mtime: the latest change of the tags or
// the queue settings), versions, the queue settings, the cluster's tags.
func (n *nodeRT) clusterFacts(maxRunning int) map[string]any {
	id := n.identity()
	qs := n.queueSettings()
	d := n.tagsDoc()
	f := map[string]any{"uuid": nil, "ctime": nil, "mtime": nil,
		"software_version": buildinfo.Get().Version, "protocol_version": ganetiVersion,
		"max_running_jobs": maxRunning, "max_tracked_jobs": n.maxTracked(), "tags": d.Get("")}
	if id.UUID != "" {
		f["uuid"], f["ctime"], f["mtime"] = id.UUID, id.CTime, max(id.CTime, d.MTime, qs.MTime)
	}
	return f
}

// architecture is Python's (platform.architecture()[0],
// platform.machine()) for this node, as Ganeti answers it.
func architecture() []string {
	bits := fmt.Sprintf("%dbits", 32<<(^uint(0)>>63))
	var u unix.Utsname
	machine := runtime.GOARCH
	if unix.Uname(&u) == nil {
		machine = unix.ByteSliceToString(u.Machine[:])
	}
	return []string{bits, machine}
}

// queryNodes is LUXI QueryNodes(names, fields, use_locking) (gnt-node
// info, gnt-node list): a row of values per node, in the order of names
// (every node, by name, when names is empty). The fields are those jobq
// has a value for; instances, storage and memory fields are refused by
// name.
func (n *nodeRT) queryNodes(req *luxi.Request) (any, error) {
	var names []string
	var fields []string
	var locking any
	if err := req.UnmarshalArgs(&names, &fields, &locking); err != nil {
		return nil, badArgs(req.Method, "expected [names, fields, use_locking]")
	}
	c := n.config()
	d := n.tagsDoc()
	var unknown []string
	for _, f := range fields {
		if !slices.Contains(nodeFields, f) {
			unknown = append(unknown, f)
		}
	}
	if len(unknown) > 0 {
		return nil, luxi.NewError("OpPrereqError", fmt.Sprintf("Unknown output fields selected: %s (jobq's node fields: %s)", strings.Join(unknown, ", "), strings.Join(nodeFields, ", ")), "wrong_input")
	}
	if len(names) == 0 {
		names = c.NodeNames()
		slices.Sort(names)
	}
	var rows [][]any
	for _, name := range names {
		i := slices.IndexFunc(c.Nodes, func(nd cluster.Node) bool { return nd.Name == name })
		if i < 0 {
			return nil, luxi.NewError("OpPrereqError", fmt.Sprintf("Node '%s' not known", name), "unknown_entity")
		}
		nd := c.Nodes[i]
		ip := nd.Address
		if h, _, err := net.SplitHostPort(nd.Address); err == nil {
			ip = h
		}
		role := "R"
		switch {
		case nd.Name == c.Master:
			role = "M"
		case !nd.Online:
			role = "O"
		case nd.Candidate:
			role = "C"
		}
		vals := map[string]any{
			"name": nd.Name, "pip": ip, "sip": ip, "master": nd.Name == c.Master,
			"master_candidate": nd.Candidate, "offline": !nd.Online, "drained": false, "role": role,
			"master_capable": nd.Candidate, "vm_capable": false, "powered": true,
			"pinst_list": []string{}, "sinst_list": []string{}, "pinst_cnt": 0, "sinst_cnt": 0,
			"ndparams": map[string]any{}, "custom_ndparams": map[string]any{}, "tags": d.Get(nd.Name),
		}
		row := make([]any, len(fields))
		for j, f := range fields {
			row[j] = vals[f]
		}
		rows = append(rows, row)
	}
	if rows == nil {
		rows = [][]any{}
	}
	return rows, nil
}

// nodeFields are the node fields QueryNodes answers.
var nodeFields = []string{"name", "pip", "sip", "master", "master_candidate", "offline", "drained", "role",
	"master_capable", "vm_capable", "powered", "pinst_list", "sinst_list", "pinst_cnt", "sinst_cnt",
	"ndparams", "custom_ndparams", "tags"}

// rapiLUXI is RAPI's in-process LUXI call (rapi.LUXI): the request goes
// through the same handler as the socket's, the answer is its JSON.
func (n *nodeRT) rapiLUXI(ctx context.Context, method string, args ...any) (json.RawMessage, error) {
	if args == nil {
		args = []any{}
	}
	b, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	res, err := (&luxiHandler{n: n}).ServeLUXI(ctx, &luxi.Request{Method: method, Args: b})
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}
