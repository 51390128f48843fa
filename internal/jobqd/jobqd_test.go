package jobqd

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/jobq-dev/jobq/internal/buildinfo"
	"github.com/jobq-dev/jobq/internal/config"
	"github.com/jobq-dev/jobq/internal/daemon"
	"github.com/jobq-dev/jobq/luxi"
)

// result is one jobqd run.
type result struct {
	code           int
	stdout, stderr string
}

// syncBuffer is a bytes.Buffer safe for the daemon's logging goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// jobqd runs jobqd with args; its default configuration file is
// defaultConf (never the machine's /etc/jobq/jobqd.conf).
func jobqd(t *testing.T, defaultConf string, args ...string) result {
	t.Helper()
	return jobqdEnv(t, defaultConf, nil, args...)
}

// jobqdEnv is jobqd with env as its whole environment.
func jobqdEnv(t *testing.T, defaultConf string, env map[string]string, args ...string) result {
	t.Helper()
	if defaultConf == "" {
		defaultConf = filepath.Join(t.TempDir(), "absent.conf")
	}
	var out, errb syncBuffer
	code := Main(context.Background(), args, Env{Stdout: &out, Stderr: &errb, ConfigPath: defaultConf,
		Notify: func(string) (bool, error) { return false, nil }, Getenv: func(k string) string { return env[k] }})
	return result{code, out.String(), errb.String()}
}

// hostname is the node name jobqd uses by default.
func hostname(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func writeConf(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "jobqd.conf")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigKeysAreFlags(t *testing.T) {
	cmd := Command(Env{})
	for _, k := range ConfigKeys {
		if cmd.Flags().Lookup(k) == nil {
			t.Errorf("config key %s is not a flag", k)
		}
	}
}

func TestCheckConfigPrintsEffectiveSettings(t *testing.T) {
	conf := writeConf(t, `# test
data-dir = /srv/jobq
max-running-jobs = 4
luxi-socket = /run/a.sock
luxi-socket = /run/b.sock
socket-group = root
log-level = debug   # chatty
`)
	r := jobqd(t, conf, "--check-config", "--max-running-jobs", "2", "--rapi-addr", "off")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("--check-config: %+v", r)
	}
	want := `# jobqd ` + buildinfo.Get().Version + `
# configuration file ` + conf + `: valid
# effective settings (and where each comes from):
data-dir          = /srv/jobq   # ` + conf + `:2
node-name         = ` + hostname(t) + `   # default
rpc-addr          = :1821   # default
rapi-addr         = off   # command line
rapi-require-auth = false   # default
metrics-addr      = off   # default
luxi-socket       = /run/a.sock   # ` + conf + `:4
luxi-socket       = /run/b.sock   # ` + conf + `:4
socket-group      = root   # ` + conf + `:6
admin-group       =    # default
max-running-jobs  = 2   # command line
shutdown-timeout  = 30s   # default
log-level         = debug   # ` + conf + `:7
idempotency-ttl   = 24h0m0s   # default
max-job-opcodes   = 256   # default
max-job-size      = 1048576   # default
max-log-entries   = 1000   # default
luxi-max-conns    = 0   # default
luxi-idle-timeout = 10m0s   # default
luxi-msg-timeout  = 2m0s   # default
rapi-max-conns    = 0   # default
rpc-max-conns     = 0   # default
join              =    # default
token             =    # default
token-file        =    # default
`
	if r.stdout != want {
		t.Errorf("--check-config printed:\n%s\nwant:\n%s", r.stdout, want)
	}

	// The printed settings are themselves a valid configuration file that
	// gives the same settings.
	again := jobqd(t, writeConf(t, r.stdout), "--check-config")
	if again.code != 0 {
		t.Fatalf("--check-config of the printed settings: %+v", again)
	}
	strip := func(s string) string {
		var lines []string
		for _, l := range strings.Split(s, "\n") {
			if k, _, ok := strings.Cut(l, "   # "); ok && !strings.HasPrefix(l, "# ") {
				lines = append(lines, k)
			}
		}
		return strings.Join(lines, "\n")
	}
	if strip(again.stdout) != strip(r.stdout) {
		t.Errorf("round trip:\n%s\nwas:\n%s", again.stdout, r.stdout)
	}
}

func TestConfigFiles(t *testing.T) {
	// A missing default file is fine; a missing --config file is not;
	// --config "" reads none.
	if r := jobqd(t, "", "--check-config"); r.code != 0 || !strings.Contains(r.stdout, ": not present, defaults apply") {
		t.Errorf("missing default file: %+v", r)
	}
	missing := filepath.Join(t.TempDir(), "nope.conf")
	if r := jobqd(t, "", "--config", missing, "--check-config"); r.code != 1 || r.stderr != "jobqd: cannot read the configuration file: open "+missing+": no such file or directory\n" {
		t.Errorf("missing --config file: %+v", r)
	}
	bad := writeConf(t, "bogus = 1\n")
	if r := jobqd(t, bad, "--config", "", "--check-config"); r.code != 0 || !strings.Contains(r.stdout, "# no configuration file\n") {
		t.Errorf("--config \"\": %+v", r)
	}
}

func TestConfigErrorsNameKeyAndLine(t *testing.T) {
	for text, want := range map[string]string{
		"data-dir = /x\n\nmax-jobs = 2\n":       `:3: max-jobs: unknown key (the keys are data-dir, node-name, rpc-addr, rapi-addr, rapi-require-auth, metrics-addr, luxi-socket, socket-group, admin-group, max-running-jobs, shutdown-timeout, log-level, idempotency-ttl, max-job-opcodes, max-job-size, max-log-entries, luxi-max-conns, luxi-idle-timeout, luxi-msg-timeout, rapi-max-conns, rpc-max-conns, join, token, token-file)`,
		"cpu-profile = /tmp/p\n":                `:1: cpu-profile: unknown key`,
		"max-running-jobs = many\n":             `:1: max-running-jobs: "many" is not a whole number`,
		"# x\nmax-running-jobs = 0\n":           `:2: max-running-jobs: 0: at least one job must be able to run`,
		"shutdown-timeout = abc\n":              `:1: shutdown-timeout: invalid duration "abc": give seconds (such as 90 or 0.5) or a number with a unit (such as 10s, 5m, 1h or 2d)`,
		"log-level = loud\n":                    `:1: log-level: "loud" is not one of debug, info, warn, error`,
		"rapi-addr = 5080\n":                    `:1: rapi-addr: "5080" is not HOST:PORT or "off"`,
		"\n\nrpc-addr = 1821\n":                 `:3: rpc-addr: "1821" is not HOST:PORT or "off"`,
		"metrics-addr = :99999\n":               `:1: metrics-addr: ":99999" is not HOST:PORT or "off"`,
		"node-name = a\nnode-name = b\n":        `:2: node-name: given twice (first on line 1)`,
		"data-dir /srv\n":                       `:1: "data-dir /srv" is not a "key = value" setting`,
		"luxi-socket = /a\nluxi-socket =\n":     `:1: luxi-socket: the socket path is empty`,
		"log-level = info\nlog-level = debug\n": `:2: log-level: given twice (first on line 1)`,
	} {
		conf := writeConf(t, text)
		r := jobqd(t, "", "--config", conf, "--check-config")
		if r.code != 1 || !strings.HasPrefix(r.stderr, "jobqd: "+conf+want) {
			t.Errorf("%q: %+v\nwant jobqd: %s%s", text, r, conf, want)
		}
	}
	// A bad value on the command line names the flag, and is a usage
	// error (exit 2).
	if r := jobqd(t, "", "--log-level", "loud", "--check-config"); r.code != 2 || r.stderr != "jobqd: --log-level: \"loud\" is not one of debug, info, warn, error (see \"jobqd --help\")\n" {
		t.Errorf("bad flag: %+v", r)
	}
	// A flag given on the command line wins: the file's value for that key
	// is not used, so it is not checked either.
	conf := writeConf(t, "log-level = loud\n")
	if r := jobqd(t, "", "--config", conf, "--log-level", "warn", "--check-config"); r.code != 0 || !strings.Contains(r.stdout, "log-level         = warn   # command line") {
		t.Errorf("flag over a bad file value: %+v", r)
	}
}

func TestVersion(t *testing.T) {
	r := jobqd(t, "", "--version")
	if r.code != 0 || r.stdout != buildinfo.String("jobqd")+"\n" {
		t.Errorf("--version: %+v", r)
	}
}

func TestUpgradeQueue(t *testing.T) {
	dir := t.TempDir()
	if r := jobqd(t, "", "--data-dir", dir, "--upgrade-queue"); r.code != 1 || !strings.Contains(r.stderr, "there is no queue directory at "+dir+"/queue") {
		t.Errorf("--upgrade-queue without a queue: %+v", r)
	}
	os.MkdirAll(filepath.Join(dir, "queue"), 0o750)
	os.WriteFile(filepath.Join(dir, "queue", "version"), []byte("1\n"), 0o640)
	r := jobqd(t, "", "--data-dir", dir, "--upgrade-queue")
	if r.code != 0 || r.stdout != "The queue in "+dir+"/queue is at format version 1, the one this jobqd reads: nothing to upgrade.\n" {
		t.Errorf("--upgrade-queue on version 1: %+v", r)
	}
	os.WriteFile(filepath.Join(dir, "queue", "version"), []byte("2\n"), 0o640)
	if r := jobqd(t, "", "--data-dir", dir, "--upgrade-queue"); r.code != 1 || !strings.Contains(r.stderr, "a jobqd cannot downgrade a queue") {
		t.Errorf("--upgrade-queue on version 2: %+v", r)
	}
	if r := jobqd(t, "", "--data-dir", dir, "--upgrade-queue", "--check-config"); r.code != 2 || !strings.Contains(r.stderr, "at most one of") {
		t.Errorf("both: %+v", r)
	}
}

func TestRefusesQueueItCannotRead(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "queue"), 0o750)
	for v, want := range map[string]string{
		"2":  `jobqd: queue format version "2" in ` + dir + `/queue/version is newer than this jobqd's (1): a newer jobqd wrote it, and this one cannot read it; run the jobqd that wrote it, or restore the data directory's backup from before the upgrade`,
		"0":  `jobqd: queue format version "0" in ` + dir + `/queue/version is older than this jobqd's (1), and this jobqd has no migration from it; restore ` + dir + ` from a backup`,
		"v1": `jobqd: queue format version "v1" in ` + dir + `/queue/version is not a number: the file is damaged (this jobqd writes 1); restore ` + dir + ` from a backup`,
	} {
		os.WriteFile(filepath.Join(dir, "queue", "version"), []byte(v+"\n"), 0o640)
		r := jobqd(t, "", "--data-dir", dir, "--rapi-addr", "off")
		if r.code != 1 || r.stderr != want+"\n" {
			t.Errorf("version %s: %+v\nwant %s", v, r, want)
		}
	}
}

// upgradable is an old queue format that a migration exists for.
type upgradable struct{}

func (upgradable) Error() string {
	return `queue format version "0" in D/queue/version is older than this jobqd's (1)`
}
func (upgradable) Newer() bool      { return false }
func (upgradable) Upgradable() bool { return true }

func TestRefusalNamesTheUpgradeCommand(t *testing.T) {
	err := formatRefusal(upgradable{}, "/srv/my jobq")
	want := `queue format version "0" in D/queue/version is older than this jobqd's (1); back up /srv/my jobq, then run: jobqd --data-dir '/srv/my jobq' --upgrade-queue`
	if err.Error() != want {
		t.Errorf("refusal:\n%s\nwant:\n%s", err, want)
	}
	if other := errors.New("x"); formatRefusal(other, "/d") != other {
		t.Error("other errors must pass through")
	}
}

// TestNotifications: READY=1 when the socket accepts calls, STOPPING=1
// before the daemon stops; the socket group comes from the file.
func TestNotifications(t *testing.T) {
	dir := t.TempDir()
	conf := writeConf(t, "data-dir = "+dir+"\nnode-name = n1\nrpc-addr = 127.0.0.1:0\nrapi-addr = off\nshutdown-timeout = 1s\n")
	states := make(chan string, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"--config", conf}, Env{Stdout: &stderr, Stderr: &stderr,
			Notify: func(s string) (bool, error) { states <- s; return true, nil }})
	}()
	var ready string
	select {
	case ready = <-states:
	case code := <-done:
		t.Fatalf("jobqd exited with %d before it was ready:\n%s", code, stderr.String())
	}
	if want := "READY=1\nSTATUS=serving on " + daemon.SocketPath(dir); ready != want {
		t.Errorf("first notification %q, want %q", ready, want)
	}
	c, err := luxi.Dial(daemon.SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Call(ctx, "QueryConfigValues", []string{"drain_flag"}); err != nil {
		t.Errorf("call after READY=1: %v", err)
	}
	c.Close()
	cancel()
	if s := <-states; !strings.HasPrefix(s, "STOPPING=1\n") {
		t.Errorf("second notification %q", s)
	}
	if code := <-done; code != 0 {
		t.Errorf("exit %d:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "jobqd stopped") {
		t.Errorf("log:\n%s", stderr.String())
	}
}

// TestPackagedConfig: the configuration file the Debian package installs
// is valid, and the defaults it shows commented out are jobqd's.
func TestPackagedConfig(t *testing.T) {
	const path = "../../packaging/jobqd.conf"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := jobqd(t, "", "--config", path, "--check-config")
	if r.code != 0 || r.stderr != "" && !strings.Contains(r.stderr, "socket-group") {
		t.Fatalf("--check-config of the packaged file: %+v", r)
	}
	flags := Command(Env{}).Flags()
	shown := 0
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "#"), " = ")
		if !strings.HasPrefix(line, "#") || !ok || flags.Lookup(k) == nil {
			continue
		}
		shown++
		switch k {
		case "luxi-socket", "node-name": // examples, not defaults
			continue
		}
		if def := flags.Lookup(k).DefValue; def != v {
			t.Errorf("%s shows %s = %s, but the default is %q", path, k, v, def)
		}
	}
	if shown < 7 {
		t.Errorf("%s shows only %d defaults", path, shown)
	}
}

// TestCheckConfigHidesToken: the join token is a secret; --check-config
// says it is set without printing it.
func TestCheckConfigHidesToken(t *testing.T) {
	r := jobqd(t, "", "--check-config", "--join", "192.0.2.1:1811", "--token", "jq1.SECRETVALUE.FP")
	if r.code != 0 || strings.Contains(r.stdout, "SECRETVALUE") || !strings.Contains(r.stdout, "token             = (secret, not shown)   # command line\n") ||
		!strings.Contains(r.stdout, "join              = 192.0.2.1:1811   # command line\n") {
		t.Fatalf("--check-config with a token: %+v", r)
	}
}

// TestCheckConfigChecksToken: --check-config checks the join token as a
// start does (a file it cannot read, a token without --join) and says
// when it comes from $JOBQ_JOIN_TOKEN, without showing it.
func TestCheckConfigChecksToken(t *testing.T) {
	absent := filepath.Join(t.TempDir(), "absent")
	if r := jobqd(t, "", "--check-config", "--join", "192.0.2.1:1821", "--token-file", absent); r.code != 1 ||
		!strings.Contains(r.stderr, "cannot read the join token: open "+absent) {
		t.Errorf("an unreadable token file: %+v", r)
	}
	if r := jobqd(t, "", "--check-config", "--token", "jq1.X"); r.code != 2 || !strings.Contains(r.stderr, "only for --join") {
		t.Errorf("a token without --join: %+v", r)
	}
	r := jobqdEnv(t, "", map[string]string{TokenEnv: "jq1.ENVSECRET"}, "--check-config", "--join", "192.0.2.1:1821")
	if r.code != 0 || strings.Contains(r.stdout, "ENVSECRET") || !strings.Contains(r.stdout, "# the join token comes from $"+TokenEnv+" (secret, not shown)\n") ||
		!strings.Contains(r.stdout, "\ntoken             =    # default\n") {
		t.Errorf("a token from $%s: %+v", TokenEnv, r)
	}
	// Without --join the environment's token is not used, nor named.
	if r := jobqdEnv(t, "", map[string]string{TokenEnv: "jq1.ENVSECRET"}, "--check-config"); r.code != 0 || strings.Contains(r.stdout, TokenEnv) {
		t.Errorf("$%s without --join: %+v", TokenEnv, r)
	}
	// A token on the command line wins, and is not said to come from the environment.
	if r := jobqdEnv(t, "", map[string]string{TokenEnv: "jq1.ENVSECRET"}, "--check-config", "--join", "192.0.2.1:1821", "--token", "jq1.FLAG"); r.code != 0 || strings.Contains(r.stdout, TokenEnv) {
		t.Errorf("--token and $%s: %+v", TokenEnv, r)
	}
}

// TestUsageErrorsExit2: a wrong command line exits 2, as jobq's do, with
// one line saying what is wrong; other errors exit 1.
func TestUsageErrorsExit2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, `jobqd: unknown flag: --bogus (see "jobqd --help")`},
		{[]string{"extra"}, `jobqd: jobqd takes no arguments, got "extra" (see "jobqd --help")`},
		{[]string{"--shutdown-timeout", "abc"}, `jobqd: --shutdown-timeout: invalid duration "abc": give seconds (such as 90 or 0.5) or a number with a unit (such as 10s, 5m, 1h or 2d) (see "jobqd --help")`},
		{[]string{"--max-running-jobs", "0"}, `jobqd: --max-running-jobs: 0: at least one job must be able to run (see "jobqd --help")`},
		{[]string{"--rpc-addr", "1821"}, `jobqd: --rpc-addr: "1821" is not HOST:PORT or "off" (see "jobqd --help")`},
		{[]string{"--token-file", "/x"}, `jobqd: --token and --token-file are only for --join HOST:PORT (see "jobqd --help")`},
		{[]string{"--join", "127.0.0.1:1", "--token", "a", "--token-file", "/x"}, `jobqd: give the join token once: --token or --token-file, not both (see "jobqd --help")`},
	} {
		r := jobqd(t, "", append([]string{"--config", "", "--data-dir", t.TempDir()}, tc.args...)...)
		if r.code != 2 || r.stdout != "" || r.stderr != tc.want+"\n" {
			t.Errorf("%q: %+v\nwant %s", tc.args, r, tc.want)
		}
	}
	// Durations take the forms jobq's take: plain seconds too.
	if r := jobqd(t, "", "--config", "", "--shutdown-timeout", "90", "--check-config"); r.code != 0 || !strings.Contains(r.stdout, "shutdown-timeout  = 1m30s   # command line") {
		t.Errorf("--shutdown-timeout 90: %+v", r)
	}
	// A data directory that cannot be created says so (not "cannot read
	// queue version"), with exit 1.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	r := jobqd(t, "", "--config", "", "--data-dir", filepath.Join(file, "d"), "--rapi-addr", "off", "--rpc-addr", "off")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "jobqd: cannot create the data directory "+filepath.Join(file, "d")+": "+file+": not a directory; ") {
		t.Errorf("an uncreatable data directory: %+v", r)
	}
}

// TestJoinToken: the token comes from --token, else --token-file, else
// $JOBQ_JOIN_TOKEN, so that it need not show in ps.
func TestJoinToken(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "token")
	os.WriteFile(tokFile, []byte("jq1.FROMFILE\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	src := config.Sources{"token": {Flag: true}, "token-file": {Flag: true}}
	env := func(v string) Env { return Env{Getenv: func(string) string { return v }} }
	for _, tc := range []struct {
		token, file, env, want, err string
	}{
		{token: "jq1.FLAG", env: "jq1.ENV", want: "jq1.FLAG"},
		{file: tokFile, env: "jq1.ENV", want: "jq1.FROMFILE"},
		{env: " jq1.ENV\n", want: "jq1.ENV"},
		{want: ""},
		{file: filepath.Join(dir, "absent"), err: "cannot read the join token: open " + filepath.Join(dir, "absent") + ": no such file or directory"},
		{file: empty, err: "must hold one token"},
	} {
		got, err := joinToken(tc.token, tc.file, src, env(tc.env))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%+v: %q, %v", tc, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%+v: %q, %v; want %q", tc, got, err, tc.want)
		}
	}
	// End to end: the token from the environment reaches the join (its
	// refusal names the token), and without any the join asks for one.
	args := []string{"--config", "", "--data-dir", t.TempDir(), "--node-name", "n2", "--rpc-addr", "127.0.0.1:0", "--rapi-addr", "off", "--join", "127.0.0.1:1"}
	if r := jobqdEnv(t, "", map[string]string{TokenEnv: "nonsense"}, args...); r.code != 1 || !strings.Contains(r.stderr, "malformed") {
		t.Errorf("a token from $%s: %+v", TokenEnv, r)
	}
	args[3] = t.TempDir()
	if r := jobqdEnv(t, "", nil, args...); r.code != 1 || !strings.Contains(r.stderr, "--join needs --token") {
		t.Errorf("no token: %+v", r)
	}
}

// The packaged configuration turns rapi-require-auth on (issue 16,
// finding 4: an anonymous GET /2/jobs/N returned a restricted command's
// output), and is valid.
func TestPackagedConfigRequiresRAPIAuth(t *testing.T) {
	r := jobqd(t, "", "--config", filepath.Join("..", "..", "packaging", "jobqd.conf"), "--check-config")
	if r.code != 0 || !regexp.MustCompile(`(?m)^rapi-require-auth += true   # .*jobqd\.conf:\d+$`).MatchString(r.stdout) {
		t.Fatalf("packaging/jobqd.conf: %+v, want rapi-require-auth = true from the file", r)
	}
}

// TestFailedStartLeavesNoDataDir: jobqd creates its data directory (and
// the directories above it) before it starts; a start that then cannot
// listen removes what it created (issue 19 item 3: a failed start leaves
// no half-made state).
func TestFailedStartLeavesNoDataDir(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	top := filepath.Join(t.TempDir(), "new")
	r := jobqd(t, "", "--config", "", "--data-dir", filepath.Join(top, "data"), "--rpc-addr", l.Addr().String(), "--rapi-addr", "off")
	if r.code != 1 || !strings.Contains(r.stderr, "cannot listen for node RPC on "+l.Addr().String()) {
		t.Fatalf("a start on a taken address: %+v", r)
	}
	if _, err := os.Stat(top); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the failed start left %s: %v", top, err)
	}
}
