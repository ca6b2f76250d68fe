package connectjwt

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"spacesync.io/shared/interop"
)

// TestCanonicalRequest_Vectors checks the fixed vectors of
// reference/connect.md section 3, which were computed with atlassian-jwt.
func TestCanonicalRequest_Vectors(t *testing.T) {
	tests := []struct {
		method, url, base string
		canonical, qsh    string
	}{
		{"GET", "http://h/", "http://h", "GET&/&", "c88caad15a1c1a900b8ac08aa9686f4e8184539bea1deda36e2f649430df3239"},
		{"GET", "http://h/path", "http://h", "GET&/path&", "799be84a7fa35570087163c0cd9af3abff7ac05c2c12ba0bb1d7eebc984b3ac2"},
		{"GET", "http://storm:2990/jira/hello-world?lic=none&tz=Australia%2FSydney&cp=%2Fjira&user_key=&loc=en-US&user_id=&jwt=abc.def.ghi&xdm_e=http%3A%2F%2Fstorm%3A2990&xdm_c=channel-servlet-hello-world&xdm_p=1",
			"http://storm:2990/jira",
			"GET&/hello-world&cp=%2Fjira&lic=none&loc=en-US&tz=Australia%2FSydney&user_id=&user_key=&xdm_c=channel-servlet-hello-world&xdm_e=http%3A%2F%2Fstorm%3A2990&xdm_p=1",
			"8063ff4ca1e41df7bc90c8ab6d0f6207d491cf6dad7c66ea797b4614b71922e9"},
		{"GET", "http://h/path/to/service?zee_last=param&repeated=parameter 1&first=param&repeated=parameter 2&repeated=Parameter 2", "http://h",
			"GET&/path/to/service&first=param&repeated=Parameter%202,parameter%201,parameter%202&zee_last=param", ""},
		{"POST", "http://h/rest/api/2/project&a=b?x=y", "http://h", "POST&/rest/api/2/project%26a=b&x=y", ""},
		{"GET", "https://x.atlassian.net/wiki/api/v2/spaces?keys=AB,CD&limit=25", "https://x.atlassian.net/wiki",
			"GET&/api/v2/spaces&keys=AB%2CCD&limit=25", "01287e2c9ce3e2dfd5c8a388fb8d301b993b8a5efbb349cc763246711d0d8325"},
		{"GET", "https://x.atlassian.net/wiki/rest/api/space?start=0&limit=25", "https://x.atlassian.net/wiki",
			"GET&/rest/api/space&limit=25&start=0", "1bd535e6b1b501117fc8943c40fc807d31a445df6da9342c7d228b0b40d6ce99"},
		{"GET", "http://h/p?b=2&a=1&a=0&B=3", "http://h", "GET&/p&B=3&a=0,1&b=2", ""},
		{"get", "http://h/wiki/?jwt=x", "http://h/wiki", "GET&/&", "c88caad15a1c1a900b8ac08aa9686f4e8184539bea1deda36e2f649430df3239"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			// The vector's spaces are literal in the reference text; on the
			// wire they would be encoded, which decodes to the same query.
			got, err := CanonicalURL(tt.method, strings.ReplaceAll(tt.url, " ", "%20"), tt.base)
			if err != nil {
				t.Fatalf("CanonicalURL: %v", err)
			}
			if got != tt.canonical {
				t.Errorf("canonical = %q, want %q", got, tt.canonical)
			}
			if tt.qsh != "" && Hash(got) != tt.qsh {
				t.Errorf("qsh = %s, want %s", Hash(got), tt.qsh)
			}
		})
	}
}

type oracleQSH struct {
	Canonical string `json:"canonical"`
	QSH       string `json:"qsh"`
	Error     string `json:"error"`
}

type oracleReq struct {
	Method  string `json:"method"`
	URL     string `json:"url"`
	BaseURL string `json:"baseUrl"`
}

// TestCanonicalRequest_AgreesWithAtlassianJWT compares the canonical string
// and qsh of a generated corpus with npm atlassian-jwt's
// createCanonicalRequest and createQueryStringHash.
func TestCanonicalRequest_AgreesWithAtlassianJWT(t *testing.T) {
	corpus := generateCorpus(rand.New(rand.NewPCG(1, 2)), 1500)
	var got []oracleQSH
	interop.Node(t, "ajwt_qsh.mjs", corpus, &got)
	if len(got) != len(corpus) {
		t.Fatalf("oracle answered %d results for %d requests", len(got), len(corpus))
	}
	mismatches, features := 0, map[string]int{}
	for i, req := range corpus {
		countFeatures(req.URL, features)
		want := got[i]
		if want.Error != "" {
			t.Fatalf("oracle failed on %+v: %s", req, want.Error)
		}
		c, err := CanonicalURL(req.Method, req.URL, req.BaseURL)
		if err != nil {
			t.Errorf("CanonicalURL(%q): %v", req.URL, err)
			continue
		}
		if c != want.Canonical || Hash(c) != want.QSH {
			mismatches++
			if mismatches <= 10 {
				t.Errorf("request %s %s (base %s):\n got  %q\n want %q", req.Method, req.URL, req.BaseURL, c, want.Canonical)
			}
		}
	}
	if mismatches > 0 {
		t.Errorf("%d of %d requests disagree with atlassian-jwt", mismatches, len(corpus))
	}
	// The corpus must really exercise the awkward cases; if the generator
	// drifts, this fails instead of the comparison passing vacuously.
	for _, f := range []string{"space", "plus", "star", "tilde", "bang", "non-ascii", "astral", "%2F", "repeated", "mixed-case", "empty-value", "comma", "&-in-path", "trailing-slash", "jwt", "no-equals", "prefix"} {
		if features[f] < 20 {
			t.Errorf("corpus has only %d requests with %s, want at least 20", features[f], f)
		}
	}
	t.Logf("%d requests agree; features: %v", len(corpus), features)
}

func countFeatures(u string, f map[string]int) {
	path, query := SplitURL(u)
	has := func(name string, ok bool) {
		if ok {
			f[name]++
		}
	}
	has("space", strings.Contains(query, "%20") || strings.Contains(query, "+"))
	has("plus", strings.Contains(strings.ToUpper(query), "%2B"))
	has("star", strings.Contains(u, "*") || strings.Contains(query, "%2A"))
	has("tilde", strings.Contains(u, "~"))
	has("bang", strings.Contains(u, "!") || strings.Contains(query, "%21"))
	has("non-ascii", strings.Contains(u, "%C3") || strings.Contains(u, "%EF"))
	has("astral", strings.Contains(u, "%F0"))
	has("%2F", strings.Contains(strings.ToUpper(u), "%2F"))
	has("comma", strings.Contains(query, ",") || strings.Contains(strings.ToUpper(query), "%2C"))
	has("&-in-path", strings.Contains(path, "&"))
	has("trailing-slash", strings.HasSuffix(path, "/"))
	has("jwt", strings.Contains(query, "jwt="))
	has("prefix", strings.HasPrefix(path, "/wiki/") || strings.HasPrefix(path, "/app/sub/"))
	params, err := ParseQuery(query)
	if err != nil {
		return
	}
	lower := map[string]bool{}
	for n, v := range params {
		has("repeated", len(v) > 1)
		if slices.Contains(v, "") {
			f["empty-value"]++
		}
		if lower[strings.ToLower(n)] {
			f["mixed-case"]++
		}
		lower[strings.ToLower(n)] = true
	}
	for pair := range strings.SplitSeq(query, "&") {
		if pair != "" && !strings.Contains(pair, "=") {
			f["no-equals"]++
			break
		}
	}
}

var (
	corpusBases = []string{
		"http://localhost:8080/wiki", "https://example.atlassian.net/wiki", "http://127.0.0.1:8081",
		"http://127.0.0.1:8081/app/sub", "http://localhost:8080/wiki/",
	}
	corpusMethods  = []string{"GET", "get", "POST", "Put", "DELETE"}
	corpusSegments = []string{
		"api", "v2", "spaces", "rest", "user", "memberof", "a&b", "a%26b", "with%20space", "%2F", "a%2fb",
		"caf%C3%A9", "~tilde", "*star", "!bang", "+plus", "a;b", "x=y", "%E2%9C%93", "123", "plugins",
		"servlet", "ac", "app-key", "module_key", "", "(paren)", ",comma", "$dollar", "@at", ":colon",
		"%F0%9F%98%80",
	}
	corpusNames = []string{
		"limit", "cursor", "keys", "ids", "type", "sort", "jwt", "JWT", "A", "a", "B", "b", "Z", "zee_last",
		"repeated", "café", "😀", "ｆ", "a b", "a+b", "x*y", "~n", "!n", "", "n,1", "/", "Keys", "KEYS",
		"tz", "xdm_e", "ü",
	}
	corpusValues = []string{
		"", "25", "AB,CD", "hello world", "+", "*", "~", "!", "'", "(x)", "/", "a=b", "?q",
		"Australia/Sydney", "é", "😀", "ｆ", "Ünïcödé", "mixedCase", "MIXEDcase", "eyJpZCI6MX0=", "a;b",
		":", "@", "$", "http://localhost:8080", ",", "a,b,c", "~557058:0b8f", "%", "&", "#", "\U0001F600x", "\uFFFDz",
	}
)

func generateCorpus(r *rand.Rand, n int) []oracleReq {
	out := make([]oracleReq, 0, n)
	for range n {
		base := corpusBases[r.IntN(len(corpusBases))]
		basePath, _ := SplitURL(base)
		origin := strings.TrimSuffix(base, basePath)
		var path strings.Builder
		if r.IntN(10) > 0 {
			path.WriteString(strings.TrimSuffix(basePath, "/"))
		}
		for range r.IntN(5) {
			path.WriteString("/")
			path.WriteString(corpusSegments[r.IntN(len(corpusSegments))])
		}
		if r.IntN(4) == 0 {
			path.WriteString("/")
		}
		p := path.String()
		if p == "" {
			p = "/"
		}
		var pairs []string
		for range r.IntN(7) {
			name := corpusNames[r.IntN(len(corpusNames))]
			reps := 1
			if r.IntN(4) == 0 {
				reps = 2 + r.IntN(2)
			}
			for range reps {
				v := corpusValues[r.IntN(len(corpusValues))]
				if v == "" && r.IntN(2) == 0 {
					pairs = append(pairs, wire(r, name, true))
					continue
				}
				pairs = append(pairs, wire(r, name, true)+"="+wire(r, v, false))
			}
		}
		r.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })
		if len(pairs) > 1 && r.IntN(10) == 0 {
			pairs = slices.Insert(pairs, 1, "")
		}
		u := origin + p
		if len(pairs) > 0 || r.IntN(8) == 0 {
			u += "?" + strings.Join(pairs, "&")
		}
		out = append(out, oracleReq{Method: corpusMethods[r.IntN(len(corpusMethods))], URL: u, BaseURL: base})
	}
	return out
}

// wire encodes a decoded query component the way different clients might:
// characters that may appear literally in a query sometimes do, hex case
// varies, and a space is sometimes '+' and sometimes %20.
func wire(r *rand.Rand, s string, isName bool) string {
	var b strings.Builder
	pct := func(c byte) {
		if r.IntN(3) == 0 {
			fmt.Fprintf(&b, "%%%02x", c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isUnreserved(c):
			b.WriteByte(c)
		case c == ' ':
			if r.IntN(2) == 0 {
				b.WriteByte('+')
			} else {
				pct(c)
			}
		case c == '=' && !isName, strings.IndexByte("!*'(),;:@$/?", c) >= 0:
			if r.IntN(2) == 0 {
				b.WriteByte(c)
			} else {
				pct(c)
			}
		default:
			pct(c)
		}
	}
	return b.String()
}

func TestParseQuery_ErrQuery(t *testing.T) {
	tests := []struct {
		query   string
		wantErr bool
	}{
		{"a=%zz", true},
		{"a=%2", true},
		{"%FF=1", true},
		{"a=%E2%82", true},
		{"a=" + strings.Repeat("x", 3), false},
		{"a=%E2%82%AC", false},
		{strings.Repeat("a=1&", maxParams), false},
		{strings.Repeat("a=1&", maxParams+1), true},
	}
	for _, tt := range tests {
		_, err := ParseQuery(tt.query)
		if got := err != nil; got != tt.wantErr {
			t.Errorf("ParseQuery(%.40q) error = %v, want error %v", tt.query, err, tt.wantErr)
		}
		if err != nil && !errors.Is(err, ErrQuery) {
			t.Errorf("ParseQuery(%.40q) error %v is not ErrQuery", tt.query, err)
		}
	}
}

func TestCompareUTF16(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"a", "b", -1},
		{"B", "a", -1},
		{"a", "ab", -1},
		{"", "", 0},
		{"é", "é", 0},
		// Code point order would put U+FF01 first; UTF-16 puts the
		// surrogate pair (0xD83D...) first, as JavaScript does.
		{"\U0001F600", "\uFF01", -1},
		{"\U0001F600", "\U0001F601", -1},
		{"\uE000", "\U00010000", 1},
	}
	for _, tt := range tests {
		if got := CompareUTF16(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareUTF16(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := CompareUTF16(tt.b, tt.a); got != -tt.want {
			t.Errorf("CompareUTF16(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestSplitURL(t *testing.T) {
	tests := []struct{ in, path, query string }{
		{"http://h:1/a/b?x=1#f", "/a/b", "x=1"},
		{"http://h", "", ""},
		{"http://h?x", "", "x"},
		{"/a?b=http://x/y", "/a", "b=http://x/y"},
		{"/wiki/api/v2/spaces?cursor=abc%3D&limit=25", "/wiki/api/v2/spaces", "cursor=abc%3D&limit=25"},
	}
	for _, tt := range tests {
		p, q := SplitURL(tt.in)
		if p != tt.path || q != tt.query {
			t.Errorf("SplitURL(%q) = %q, %q; want %q, %q", tt.in, p, q, tt.path, tt.query)
		}
	}
}
