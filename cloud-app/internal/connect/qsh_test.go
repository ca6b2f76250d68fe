package connect

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"

	"spacesync.io/shared/interop"
)

func TestCanonicalRequest_OK(t *testing.T) {
	tests := []struct {
		name                      string
		method, path, q, basePath string
		want                      string
		wantQSH                   string
	}{
		{name: "empty", method: "GET", path: "/", want: "GET&/&",
			wantQSH: "c88caad15a1c1a900b8ac08aa9686f4e8184539bea1deda36e2f649430df3239"},
		{name: "path", method: "GET", path: "/path", want: "GET&/path&",
			wantQSH: "799be84a7fa35570087163c0cd9af3abff7ac05c2c12ba0bb1d7eebc984b3ac2"},
		{name: "outbound v1 spaces, repeated keys sorted", method: "GET", path: "/wiki/rest/api/space",
			q: "spaceKey=DEV&spaceKey=ARCH&limit=25", basePath: "/wiki",
			want: "GET&/rest/api/space&limit=25&spaceKey=ARCH,DEV"},
		{name: "ampersand in path", method: "POST", path: "/rest/api/2/project&a=b", q: "x=y",
			want: "POST&/rest/api/2/project%26a=b&x=y"},
		{name: "v1 space paging", method: "GET", path: "/wiki/rest/api/space", q: "start=0&limit=25", basePath: "/wiki",
			want:    "GET&/rest/api/space&limit=25&start=0",
			wantQSH: "1bd535e6b1b501117fc8943c40fc807d31a445df6da9342c7d228b0b40d6ce99"},
		{name: "v2 keys with an encoded comma", method: "GET", path: "/wiki/api/v2/spaces", q: "keys=AB,CD&limit=25", basePath: "/wiki",
			want:    "GET&/api/v2/spaces&keys=AB%2CCD&limit=25",
			wantQSH: "01287e2c9ce3e2dfd5c8a388fb8d301b993b8a5efbb349cc763246711d0d8325"},
		{name: "old Jira iframe URL, jwt dropped", method: "GET", path: "/hello-world",
			q:       "lic=none&tz=Australia%2FSydney&cp=%2Fjira&user_key=&loc=en-US&user_id=&jwt=abc.def.ghi&xdm_e=http%3A%2F%2Fstorm%3A2990&xdm_c=channel-servlet-hello-world&xdm_p=1",
			want:    "GET&/hello-world&cp=%2Fjira&lic=none&loc=en-US&tz=Australia%2FSydney&user_id=&user_key=&xdm_c=channel-servlet-hello-world&xdm_e=http%3A%2F%2Fstorm%3A2990&xdm_p=1",
			wantQSH: "8063ff4ca1e41df7bc90c8ab6d0f6207d491cf6dad7c66ea797b4614b71922e9"},
		{name: "repeated values sorted by code unit", method: "GET", path: "/path/to/service",
			q:    "zee_last=param&repeated=parameter 1&first=param&repeated=parameter 2&repeated=Parameter 2",
			want: "GET&/path/to/service&first=param&repeated=Parameter%202,parameter%201,parameter%202&zee_last=param"},
		{name: "upper case names first", method: "GET", path: "/", q: "b=2&a=1&a=0&B=3", want: "GET&/&B=3&a=0,1&b=2"},
		{name: "valueless parameters", method: "GET", path: "/x", q: "a&b=foo&c", want: "GET&/x&a=&b=foo&c="},
		{name: "plus is a space, %2B a plus, star and bang escaped, tilde kept", method: "get", path: "/x",
			q: "s=a+b&p=%2B&t=*!~'()", want: "GET&/x&p=%2B&s=a%20b&t=%2A%21~%27%28%29"},
		{name: "trailing slash removed once", method: "GET", path: "/a/b//", want: "GET&/a/b/&"},
		{name: "our base path stripped", method: "POST", path: "/spacesync/lifecycle/installed", basePath: "/spacesync",
			want: "POST&/lifecycle/installed&"},
		{name: "base path only", method: "GET", path: "/wiki", basePath: "/wiki", want: "GET&/&"},
		{name: "base path with slash", method: "GET", path: "/wiki/", basePath: "/wiki", want: "GET&/&"},
		{name: "not a segment of the base path", method: "GET", path: "/wikifoo/x", basePath: "/wiki", want: "GET&/wikifoo/x&"},
		{name: "path kept encoded", method: "GET", path: "/a%2fb%2F%20c", want: "GET&/a%2fb%2F%20c&"},
		{name: "non-ASCII values", method: "GET", path: "/", q: "n=%C3%A9t%C3%A9&m=\u00e9", want: "GET&/&m=%C3%A9&n=%C3%A9t%C3%A9"},
		{name: "astral before U+FFFD as in UTF-16", method: "GET", path: "/", q: "b=%EF%BF%BD&b=%F0%9F%98%80",
			want: "GET&/&b=%F0%9F%98%80,%EF%BF%BD"},
		{name: "empty segments skipped, empty name kept", method: "GET", path: "/x", q: "a=1&&=2&c=3=4&d&jwt=1&jwt=2",
			want: "GET&/x&=2&a=1&c=3%3D4&d="},
		{name: "value with commas encoded", method: "GET", path: "/x", q: "v=a,b&v=a", want: "GET&/x&v=a,a%2Cb"},
		{name: "literal semicolon is data", method: "GET", path: "/x", q: "a=1;b=2", want: "GET&/x&a=1%3Bb%3D2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CanonicalRequest(tt.method, tt.path, tt.q, tt.basePath)
			if err != nil {
				t.Fatalf("CanonicalRequest: %v", err)
			}
			if got != tt.want {
				t.Errorf("canonical: got %q, want %q", got, tt.want)
			}
			if tt.wantQSH != "" {
				if q := QSH(got); q != tt.wantQSH {
					t.Errorf("qsh: got %s, want %s", q, tt.wantQSH)
				}
			}
		})
	}
}

func TestCanonicalRequest_ErrBadQuery(t *testing.T) {
	tests := []struct {
		name, q string
		ok      bool
	}{
		{"bad escape", "a=%zz", false},
		{"bad escape, twin", "a=%7a", true},
		{"truncated escape", "a=%4", false},
		{"truncated escape, twin", "a=%41", true},
		{"escape in a name", "%g1=1", false},
		{"escape in a name, twin", "%61=1", true},
		{"not UTF-8 once decoded", "a=%FF", false},
		{"UTF-8, twin", "a=%C3%BF", true},
		{"cut UTF-8 sequence", "a=%E2%82", false},
		{"whole UTF-8 sequence, twin", "a=%E2%82%AC", true},
		{"raw invalid byte", "a=\xff", false},
		{"too many parameters", strings.Repeat("a=1&", maxQueryParams) + "a=1", false},
		{"many parameters, twin", strings.Repeat("a=1&", maxQueryParams-1) + "a=1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CanonicalRequest("GET", "/x", tt.q, "")
			if tt.ok && err != nil {
				t.Fatalf("got %v, want no error", err)
			}
			if !tt.ok && !errors.Is(err, ErrBadQuery) {
				t.Fatalf("got %v, want ErrBadQuery", err)
			}
		})
	}
}

func TestLessUTF16(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"A", "a", true},
		{"a", "A", false},
		{"a", "ab", true},
		{"ab", "a", false},
		{"a", "a", false},
		{"\U0001F600", "\uFFFD", true}, // surrogate pair D83D < FFFD
		{"\uFFFD", "\U0001F600", false},
		{"\U0001F600", "\U0001F601", true},
		{"\u00e9", "\u0100", true},
		{"x\U0001F600", "x\uE000", true},
	}
	for _, tt := range tests {
		if got := lessUTF16(tt.a, tt.b); got != tt.want {
			t.Errorf("lessUTF16(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// corpusRequest is one generated request: the URL as sent, and the base
// URL it is relative to.
type corpusRequest struct {
	Method  string `json:"method"`
	URL     string `json:"url"`
	BaseURL string `json:"baseUrl"`
}

// genCorpus generates n requests covering the shapes Atlassian and the
// browser produce: spaces, +, *, ~, !, non-ASCII, %2F, repeated keys in
// any order, mixed case, empty values, commas, & in the path, trailing
// slashes, a base path prefix and a jwt parameter. Path characters that
// Node's legacy url.parse rewrites (' " < > \ ^ ` { | } and spaces) are
// left out of paths: Node hashes its rewritten form, not the bytes sent.
func genCorpus(n int) []corpusRequest {
	r := rand.New(rand.NewPCG(20261203, 4))
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	methods := []string{"GET", "get", "POST", "Put", "DELETE", "patch", "HEAD"}
	bases := []string{"https://app.example.com", "https://app.example.com/", "https://app.example.com/spacesync",
		"https://acme.atlassian.net/wiki", "http://127.0.0.1:8081", "https://app.example.com/a/b"}
	pathBits := []string{"pages", "space-sync", "api", "v2", "Spaces", "x", "a.b", "_u_", "~tilde", "!bang", "*star",
		"plus+sign", "%2F", "%2f", "%20", "%C3%A9", "\u00e9t\u00e9", "\u65e5\u672c", "&", "a&b=c", "=", ",", ";", ":", "@", "$", "(p)", "%26"}
	names := []string{"a", "A", "b", "B", "key", "Key", "KEY", "spaceKey", "limit", "cursor", "xdm_e", "cp", "lic", "tz",
		"a b", "a+b", "%2B", "n\u00e9", "%C3%A9", "*", "~", "!", "", "x-y", "x.y", "%2C"}
	values := []string{"", "1", "0", "DEV", "ARCH", "dev", "a b", "a+b", "a%2Bb", "%20", "*", "~", "!", "'q'", "(x)",
		"a,b", ",", "%2C", "%2F", "/", "https%3A%2F%2Facme.atlassian.net", "%2Fwiki", "\u00e9", "%C3%A9", "%E6%97%A5",
		"%F0%9F%98%80", "%EF%BF%BD", "=", "a=b", "Z", "z", "none", "en-US", "Australia%2FSydney", "%7E", "%2a"}
	out := make([]corpusRequest, 0, n)
	for i := 0; i < n; i++ {
		base := bases[r.IntN(len(bases))]
		u, _ := url.Parse(base)
		basePath := strings.TrimSuffix(u.Path, "/")
		var p strings.Builder
		p.WriteString(basePath)
		segs := r.IntN(4)
		for s := 0; s < segs; s++ {
			p.WriteString("/")
			for k := 1 + r.IntN(2); k > 0; k-- {
				p.WriteString(pick(pathBits...))
			}
		}
		switch r.IntN(6) {
		case 0:
			p.WriteString("/")
		case 1:
			if segs > 0 {
				p.WriteString("//")
			}
		}
		path := p.String()
		if path == "" && r.IntN(2) == 0 {
			path = "/"
		}
		var q []string
		for k := r.IntN(7); k > 0; k-- {
			name := pick(names...)
			switch r.IntN(8) {
			case 0:
				q = append(q, name) // no "="
			case 1:
				q = append(q, name+"=")
			default:
				q = append(q, name+"="+pick(values...))
			}
			if r.IntN(4) == 0 { // a repeated key
				q = append(q, name+"="+pick(values...))
			}
		}
		if r.IntN(3) == 0 {
			q = append(q, "jwt=eyJhbGciOiJIUzI1NiJ9.e30.c2ln")
		}
		r.Shuffle(len(q), func(a, b int) { q[a], q[b] = q[b], q[a] })
		full := u.Scheme + "://" + u.Host + path
		if path == "" {
			full += "/"
		}
		if len(q) > 0 || r.IntN(10) == 0 {
			full += "?" + strings.Join(q, "&")
		}
		out = append(out, corpusRequest{Method: pick(methods...), URL: full, BaseURL: base})
	}
	return out
}

// splitURL returns the raw path and query of a corpus URL as a server
// would receive them.
func splitURL(t testing.TB, raw string) (string, string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	rest := strings.TrimPrefix(raw, u.Scheme+"://"+u.Host)
	path, query, _ := strings.Cut(rest, "?")
	return path, query
}

func TestCanonicalRequest_AgreesWithAtlassianJWT(t *testing.T) {
	corpus := genCorpus(1500)
	// A few fixed shapes besides the generated ones.
	corpus = append(corpus,
		corpusRequest{"GET", "https://example.atlassian.net/wiki/rest/api/space?spaceKey=DEV&spaceKey=ARCH&limit=25", "https://example.atlassian.net/wiki"},
		corpusRequest{"POST", "https://djtest9.jira-dev.com/rest/api/2/project&a=b?x=y", "https://djtest9.jira-dev.com"},
		corpusRequest{"GET", "https://app.example.com/", "https://app.example.com"},
	)
	var got []struct {
		Canonical string `json:"canonical"`
		QSH       string `json:"qsh"`
		Error     string `json:"error"`
	}
	interop.Node(t, "connect_qsh.mjs", corpus, &got)
	if len(got) != len(corpus) {
		t.Fatalf("node answered %d results for %d requests", len(got), len(corpus))
	}
	checked := 0
	for i, c := range corpus {
		want := got[i]
		if want.Error != "" {
			t.Errorf("%s %s: atlassian-jwt failed: %s", c.Method, c.URL, want.Error)
			continue
		}
		path, query := splitURL(t, c.URL)
		bu, _ := url.Parse(c.BaseURL)
		canon, err := CanonicalRequest(c.Method, path, query, bu.Path)
		if err != nil {
			t.Errorf("%s %s (base %s): %v", c.Method, c.URL, c.BaseURL, err)
			continue
		}
		if canon != want.Canonical {
			t.Errorf("%s %s (base %s):\n got  %q\n want %q", c.Method, c.URL, c.BaseURL, canon, want.Canonical)
			continue
		}
		if q := QSH(canon); q != want.QSH {
			t.Errorf("%s %s: qsh %s, atlassian-jwt %s", c.Method, c.URL, q, want.QSH)
			continue
		}
		checked++
	}
	if checked < 1000 {
		t.Fatalf("only %d requests agreed; want at least 1,000", checked)
	}
	t.Logf("%d requests agree with atlassian-jwt", checked)
}

// FuzzCanonicalRequest checks that any input either fails with
// ErrBadQuery or gives a well-formed canonical request that does not
// depend on the order of the query's parameters, and never panics.
func FuzzCanonicalRequest(f *testing.F) {
	f.Add("GET", "/", "", "")
	f.Add("get", "/wiki/rest/api/space", "spaceKey=DEV&spaceKey=ARCH&limit=25", "/wiki")
	f.Add("POST", "/rest/api/2/project&a=b", "x=y", "")
	f.Add("GET", "/pages/space-sync/", "jwt=a.b.c&xdm_e=https%3A%2F%2Fa.atlassian.net&cp=%2Fwiki&lic=none", "/spacesync")
	f.Add("PUT", "x", "a+b=%2B&a+b=%20&=&&", "/x")
	f.Add("GET", "/\u00e9", "n=%F0%9F%98%80&n=%EF%BF%BD&n=\u00e9", "")
	f.Fuzz(func(t *testing.T, method, path, query, basePath string) {
		got, err := CanonicalRequest(method, path, query, basePath)
		if err != nil {
			if !errors.Is(err, ErrBadQuery) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		prefix := asciiUpper(method) + "&"
		if !strings.HasPrefix(got, prefix) {
			t.Fatalf("%q does not start with %q", got, prefix)
		}
		p, cq, ok := strings.Cut(got[len(prefix):], "&")
		if !ok || !strings.HasPrefix(p, "/") {
			t.Fatalf("path part %q of %q (path %q)", p, got, path)
		}
		// The canonical query of the reversed parameters is the same.
		segs := strings.Split(query, "&")
		for i, j := 0, len(segs)-1; i < j; i, j = i+1, j-1 {
			segs[i], segs[j] = segs[j], segs[i]
		}
		again, err := CanonicalRequest(method, path, strings.Join(segs, "&"), basePath)
		if err != nil || again != got {
			t.Fatalf("reordered query: got %q (%v), want %q", again, err, got)
		}
		// Without repeated names (joined by bare commas), the canonical
		// query is a query that canonicalises to itself.
		if !strings.Contains(cq, ",") {
			self, err := CanonicalRequest("GET", "/", cq, "")
			if err != nil || self != "GET&/&"+cq {
				t.Fatalf("canonical query %q is not a fixed point: %q (%v)", cq, self, err)
			}
		}
	})
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}

func ExampleCanonicalRequest() {
	c, _ := CanonicalRequest("GET", "/wiki/rest/api/space", "spaceKey=DEV&spaceKey=ARCH&limit=25", "/wiki")
	fmt.Println(c)
	// Output: GET&/rest/api/space&limit=25&spaceKey=ARCH,DEV
}
