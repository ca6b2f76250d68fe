package e2e

import (
	"bytes"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"spacesync.io/devstack/sendgridsim"
	"spacesync.io/shared/token"
)

// checkDatabases checks from the services' logs that each runs on the
// database the run is about.
func (j *journey) checkDatabases() {
	j.t.Helper()
	want := "sqlite"
	if !j.embedded {
		want = "postgres"
	}
	out := j.st.out.String()
	for _, svc := range []string{"cloud-app", "dc-app"} {
		re := regexp.MustCompile(`(?m)^\[` + svc + `\] .*msg="database ready" dialect=(\w+)`)
		m := re.FindStringSubmatch(out)
		if m == nil || m[1] != want {
			j.st.fatalf("%s is not on %s: %v", svc, want, m)
		}
	}
}

var bannerSignIn = regexp.MustCompile(`dc-app \(Data Center\)\s+(\S+)/space-sync\s+sign in as (\S+) / (\S+)\n`)

// clearField empties a text field as selecting its text and deleting it
// would (an input event follows).
func clearField(id string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](`(() => { const e = document.getElementById(` + jsString(id) + `); e.focus(); e.value = ''; e.dispatchEvent(new Event('input', {bubbles: true})); })()`)
}

// scrollIntoView scrolls the element into view, for the screenshot.
func scrollIntoView(id string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](`document.getElementById(` + jsString(id) + `).scrollIntoView({block: 'nearest'})`)
}

// readStackSecrets reads what the stack generated and printed: the admin
// sign-in from the banner, the keys and secrets from the data directory
// (or, off the embedded default, from the environment the test set).
func (j *journey) readStackSecrets() {
	j.t.Helper()
	m := bannerSignIn.FindStringSubmatch(j.st.banner)
	if m == nil {
		j.st.fatalf("the banner has no Data Center sign-in:\n%s", j.st.banner)
	}
	if m[1] != j.cfg.dcURL() {
		j.t.Errorf("the banner names dc-app at %s, want %s", m[1], j.cfg.dcURL())
	}
	for _, u := range []string{j.cfg.confluenceURL() + "/wiki/", j.cfg.cloudURL(), j.cfg.sendgridURL()} {
		if !strings.Contains(j.st.banner, u) {
			j.t.Errorf("the banner does not name %s:\n%s", u, j.st.banner)
		}
	}
	j.adminUser, j.adminPass = m[2], m[3]
	if kept := j.readData("devstack/dc-admin-password"); kept != j.adminPass {
		j.t.Errorf("the banner's password is not the one kept in the data directory")
	}
	j.addSecret("dc admin password", j.adminPass)
	j.addSecret("SendGrid API key", j.readData("devstack/sendgrid-api-key"))
	var sim struct {
		SharedSecret  string `json:"sharedSecret"`
		PrivateKeyPem string `json:"privateKeyPem"`
	}
	if err := json.Unmarshal([]byte(j.readData("devstack/confluence-sim.json")), &sim); err != nil {
		j.t.Fatalf("the simulator's state: %v", err)
	}
	j.addSecret("Connect shared secret", sim.SharedSecret)
	// A line from the middle of the simulator's install signing key.
	if lines := strings.Split(sim.PrivateKeyPem, "\n"); len(lines) > 3 {
		j.addSecret("install signing key", lines[2])
	}

	tokenKeys := j.cfg.env["SPACESYNC_TOKEN_KEYS"]
	secrets := map[string]string{"CLOUD_APP_SECRET_KEY": j.cfg.env["CLOUD_APP_SECRET_KEY"], "DC_APP_SECRET_KEY": j.cfg.env["DC_APP_SECRET_KEY"]}
	if j.embedded {
		tokenKeys = j.readData("cloud-app/token-keys")
		secrets["CLOUD_APP_SECRET_KEY"] = j.readData("cloud-app/secret.key")
		secrets["DC_APP_SECRET_KEY"] = j.readData("dc-app/secret.key")
	}
	for k, v := range secrets {
		j.addSecret(k, v)
	}
	j.addSecret("SPACESYNC_TOKEN_KEYS", tokenKeys)
	for _, kv := range strings.Split(tokenKeys, ",") {
		_, raw, _ := strings.Cut(kv, ":")
		j.addSecret("a token key", raw)
	}
	ks, err := token.ParseKeySet(tokenKeys)
	if err != nil {
		j.t.Fatalf("the stack's token keys: %v", err)
	}
	j.keys = ks
}

func (j *journey) readData(rel string) string {
	j.t.Helper()
	b, err := os.ReadFile(filepath.Join(j.cfg.dataDir, rel))
	if err != nil {
		j.t.Fatalf("the stack's data directory: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// addSecret records a secret for the log scan; a short one would match by
// chance, and an empty one would make the scan pass vacuously.
func (j *journey) addSecret(what, v string) {
	j.t.Helper()
	if len(v) < 12 {
		j.t.Fatalf("%s is %d characters: not a secret the log scan can look for", what, len(v))
	}
	for k, old := range j.secrets {
		if old == v {
			if k != what {
				j.secrets[k+", "+what] = v
				delete(j.secrets, k)
			}
			return
		}
	}
	j.secrets[what] = v
}

// captureJWTs records the page JWT of the app's iframe and a fresh
// context token, as the app receives them.
func (j *journey) captureJWTs(b *tab) {
	j.t.Helper()
	u, err := url.Parse(b.frameURL())
	if err != nil || u.Query().Get("jwt") == "" {
		j.t.Fatalf("the app's iframe URL has no jwt: %v", err)
	}
	j.addSecret("page JWT "+fmt.Sprint(len(j.secrets)), u.Query().Get("jwt"))
	ct := eval[string](b, `new Promise((ok, fail) => { AP.context.getToken(ok); setTimeout(() => fail(new Error('no context token')), 10000); })`)
	if strings.Count(ct, ".") != 2 || !strings.HasPrefix(ct, "eyJ") {
		j.t.Fatalf("AP.context.getToken gave %.20q…", ct)
	}
	j.addSecret("context JWT "+fmt.Sprint(len(j.secrets)), ct)
}

// openSpaceSyncAs switches the simulator's user with its user switcher and opens
// the Space Sync page from the home page's app links.
func (j *journey) openSpaceSyncAs(accountID, name string, shot string) {
	j.t.Helper()
	b := j.sim
	b.navigate(j.cfg.confluenceURL() + "/wiki/")
	b.waitJS("the simulator's home page", `!!document.querySelector('#general-pages a')`)
	// Picking a user submits the switcher (host.js).
	b.do("switch user", chromedp.SetValue(chromedp.ID("user-select"), accountID))
	b.waitJS("signed in as "+name, `(() => { const s = document.querySelector('main p.subtle strong'); return !!s && s.textContent === `+jsString(name)+` && !!document.querySelector('#general-pages a'); })()`)
	if shot != "" {
		b.shot(shot, true)
	}
	if got := b.text("#general-pages a"); got != "Space Sync" {
		j.t.Errorf("the app's page link says %q", got)
	}
	b.do("open Space Sync", chromedp.Click(chromedp.CSS(`#general-pages a`)))
	b.attachFrame(j.cfg.cloudURL() + "/pages/space-sync")
	b.waitJS("the space list", `document.querySelectorAll('#spaces-body tr').length > 0`)
}

// openAction opens the row's Actions menu and chooses label.
func (j *journey) openAction(label string) {
	j.t.Helper()
	b := j.sim
	b.do("open the Actions menu", chromedp.Click(chromedp.CSS("#syncs-body .ss-actions")))
	b.waitJS("the Actions menu", `!document.getElementById('actions-menu').hidden`)
	idx := eval[int](b, `[...document.querySelectorAll('#actions-menu [role=menuitem]')].findIndex(b => b.textContent === `+jsString(label)+`)`)
	if idx < 0 {
		b.fail("choose "+label, fmt.Errorf("the menu has %v", j.menuItems()))
	}
	b.do(label, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#actions-menu li:nth-child(%d) [role=menuitem]`, idx+1))))
}

func (j *journey) menuItems() []string {
	return eval[[]string](j.sim, `[...document.querySelectorAll('#actions-menu [role=menuitem]')].map(b => b.textContent)`)
}

// Step 1: in the Confluence simulator as a space admin, open Space Sync,
// Edit sync settings of Engineering, Create New Sync with a name, a group
// in the permissions, comments and labels on: the row shows NOT SYNC YET.
func (j *journey) step1CreateSync() {
	j.t.Helper()
	b := j.sim
	j.openSpaceSyncAs(samID, "Sam Space-Admin", "1-confluence-home")
	b.shot("1-space-list", true)
	if got := eval[string](b, `document.cookie`); got != "" {
		j.t.Errorf("the app's cross-site frame has cookies: %q", got)
	}
	j.captureJWTs(b)

	b.do("Edit sync settings", chromedp.Click(chromedp.CSS(`button[aria-label="Edit sync settings of `+spaceName+`"]`)))
	b.waitJS("the Engineering view", `!document.getElementById('create-sync').hidden && !document.getElementById('syncs-empty').hidden`)
	b.do("Create New Sync", chromedp.Click(chromedp.ID("create-sync")))
	b.waitJS("the create dialog", `document.getElementById('dlg-create').open && document.querySelectorAll('#create-perms-chosen li').length > 0`)
	b.do("name", clearField("create-name"), chromedp.SendKeys(chromedp.ID("create-name"), syncName))
	b.do("search the group", chromedp.SendKeys(chromedp.ID("create-perms-input"), group))
	b.waitJS("the group in the picker", `!document.getElementById('create-perms-list').hidden && document.getElementById('create-perms-list').textContent.includes(`+jsString(group)+`)`)
	b.do("choose the group", chromedp.KeyEvent(kb.Enter))
	b.waitJS("the group chosen", `[...document.querySelectorAll('#create-perms-chosen li')].some(li => li.textContent.includes(`+jsString(group)+`))`)
	for _, id := range []string{"create-comments", "create-labels"} {
		if !eval[bool](b, `document.getElementById(`+jsString(id)+`).checked`) {
			b.do("tick "+id, chromedp.Click(chromedp.ID(id)))
		}
	}
	b.shot("1-create-sync", true)
	b.do("Create", chromedp.Click(chromedp.ID("create-submit")))
	b.waitJS("the new row", `!document.getElementById('dlg-create').open && document.querySelectorAll('#syncs-body tr').length === 1`)
	if got := b.text("#syncs-body tr strong"); got != syncName {
		j.t.Errorf("the new row is named %q", got)
	}
	if got := b.text("#syncs-body tr .lozenge"); !strings.EqualFold(got, "Not sync yet") {
		j.t.Errorf("the new row's status is %q, want NOT SYNC YET", got)
	}
	if got := b.text("#syncs-body tr td:nth-child(2)"); !strings.Contains(got, group) {
		j.t.Errorf("the new row's permissions are %q, want %s among them", got, group)
	}
	if got := b.text("#syncs-body tr td:nth-child(3)"); !strings.Contains(strings.ToLower(got), "comments") || !strings.Contains(strings.ToLower(got), "labels") {
		j.t.Errorf("the new row includes %q, want comments and labels", got)
	}
	j.syncID = eval[string](b, `document.querySelector('#syncs-body tr').dataset.syncId`)
	b.shot("1-sync-created", true)
}

// Step 2: Download Token with a message; Send Token with a subject and a
// message; the page reports it sent; the mail is in the SendGrid simulator
// and its attachment decodes to the token recorded for that email, in the
// same form as the download.
func (j *journey) step2DownloadAndSend() {
	j.t.Helper()
	b := j.sim
	j.openAction("Download Token")
	b.waitJS("the download dialog", `document.getElementById('dlg-download').open`)
	b.do("message", chromedp.SendKeys(chromedp.ID("download-message"), downloadMessage))
	b.shot("2-download-token", false)
	b.do("Download", chromedp.Click(chromedp.ID("download-submit")))
	b.waitJS("the download result", `!document.getElementById('download-result').hidden`)
	b.do("show the result", scrollIntoView("download-result"))
	b.shot("2-token-downloaded", true)
	j.downloadPath = filepath.Join(j.dl, spaceKey+"-space-sync.token")
	j.downloaded = waitDownload(j.t, j.downloadPath)
	opener := &token.Opener{Keys: j.keys, Issuer: j.cfg.cloudURL()}
	dc, err := opener.Open(j.downloaded)
	if err != nil {
		j.t.Fatalf("the downloaded file does not open with the stack's key: %v", err)
	}
	if dc.Sync.ID != j.syncID || dc.Sync.Name != syncName || dc.Message != downloadMessage || dc.Space.Key != spaceKey ||
		!dc.Sync.Comments || !dc.Sync.Labels || !slices.ContainsFunc(dc.Sync.Permissions, func(p token.Principal) bool { return p.Type == "group" && p.Name == group }) {
		j.t.Fatalf("the downloaded token: %+v", dc)
	}
	j.downloadClaims = dc
	j.addSecret("downloaded token", strings.TrimSpace(string(j.downloaded)))
	j.addSecret("redemption secret of the download", dc.RedemptionSecret)
	b.do("close", chromedp.Click(chromedp.ID("download-cancel")))
	b.waitJS("the download dialog closed", `!document.getElementById('dlg-download').open`)

	j.openAction("Send Token")
	b.waitJS("the send dialog", `document.getElementById('dlg-send').open`)
	b.do("to", chromedp.SendKeys(chromedp.ID("send-to"), recipient))
	b.do("subject", clearField("send-subject"), chromedp.SendKeys(chromedp.ID("send-subject"), mailSubject))
	b.do("message", chromedp.SendKeys(chromedp.ID("send-message"), mailMessage))
	b.shot("2-send-token", true)
	b.do("Send", chromedp.Click(chromedp.ID("send-submit")))
	b.waitJS("the page reporting the mail sent", `document.getElementById('send-progress').textContent.includes('sent to `+recipient+`') && document.getElementById('send-progress').textContent.includes('Spam or Junk')`)
	b.do("show the result", scrollIntoView("send-progress"))
	b.shot("2-token-sent", true)

	msg := j.waitMail(recipient)
	if !strings.Contains(msg.Subject, mailSubject) {
		j.t.Errorf("the mail's subject is %q, want it to contain %q", msg.Subject, mailSubject)
	}
	if !strings.Contains(msg.Text, mailMessage) {
		j.t.Errorf("the mail's text does not quote the message:\n%s", msg.Text)
	}
	if len(msg.Attachments) != 1 || msg.Attachments[0].Filename != spaceKey+"-space-sync.token" {
		j.t.Fatalf("the mail's attachments: %+v", msg.Attachments)
	}
	j.emailed = msg.Attachments[0].Content
	ec, err := opener.Open(j.emailed)
	if err != nil {
		j.t.Fatalf("the attachment does not open with the stack's key: %v", err)
	}
	j.addSecret("emailed token", strings.TrimSpace(string(j.emailed)))
	j.addSecret("redemption secret of the email", ec.RedemptionSecret)
	recorded := j.emailTokenJTI(recipient)
	if ec.ID != recorded {
		j.t.Errorf("the attachment is token %s, the email's record says %s", ec.ID, recorded)
	}
	if ec.ID == dc.ID || ec.Sync.ID != j.syncID || ec.Message != mailMessage {
		j.t.Errorf("the emailed token: id %s (download %s), sync %s, message %q", ec.ID, dc.ID, ec.Sync.ID, ec.Message)
	}
	// The same form: the same header members and algorithms, one compact
	// JWE on one line, and the same claims apart from the per-token ones.
	dh, eh := tokenHeader(j, j.downloaded), tokenHeader(j, j.emailed)
	if !slices.Equal(sortedKeys(dh), sortedKeys(eh)) || dh["typ"] != eh["typ"] || dh["alg"] != eh["alg"] || dh["enc"] != eh["enc"] || dh["kid"] != eh["kid"] {
		j.t.Errorf("the download and the attachment differ in form: %v / %v", dh, eh)
	}
	if strings.Count(strings.TrimSpace(string(j.emailed)), "\n") != 0 || strings.Count(string(j.emailed), ".") != 4 {
		j.t.Errorf("the attachment is not one compact JWE")
	}
	if ec.Space != dc.Space || ec.Site != dc.Site || ec.Sync.Name != dc.Sync.Name || len(ec.Sync.Permissions) != len(dc.Sync.Permissions) {
		j.t.Errorf("the attachment grants something else than the download: %+v / %+v", ec, dc)
	}

	// The mail as a person sees it in the SendGrid simulator.
	d := j.dc
	d.navigate(j.cfg.sendgridURL() + "/messages/" + url.PathEscape(msg.ID))
	d.waitJS("the mail page", `document.body.textContent.includes(`+jsString(spaceKey+"-space-sync.token")+`)`)
	d.shot("2-mail-in-sendgrid-simulator", true)
}

// waitMail polls the SendGrid simulator's JSON API for a mail to addr.
func (j *journey) waitMail(addr string) sendgridsim.Message {
	j.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var list struct {
			Messages []sendgridsim.Message `json:"messages"`
		}
		resp, err := http.Get(j.cfg.sendgridURL() + "/api/messages")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&list)
			resp.Body.Close()
		}
		for _, m := range list.Messages {
			if len(m.To) == 1 && m.To[0].Email == addr {
				return m
			}
		}
		if time.Now().After(deadline) {
			j.st.fatalf("no mail to %s in the SendGrid simulator (%d mails; last error %v)", addr, len(list.Messages), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// emailTokenJTI is the token id cloud-app recorded for the email to addr,
// read from its database.
func (j *journey) emailTokenJTI(addr string) string {
	j.t.Helper()
	driver, dsn, q := "sqlite", "file:"+filepath.Join(j.cfg.dataDir, "cloud-app", "cloud-app.db")+"?mode=ro",
		`SELECT token_jti FROM token_emails WHERE sync_id = ? AND to_addr = ?`
	if !j.embedded {
		driver, dsn, q = "pgx", j.cfg.env["CLOUD_APP_DATABASE_URL"], `SELECT token_jti FROM token_emails WHERE sync_id = $1 AND to_addr = $2`
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		j.t.Fatal(err)
	}
	defer db.Close()
	var jtis []string
	rows, err := db.Query(q, j.syncID, addr)
	if err != nil {
		j.t.Fatalf("read cloud-app's token_emails: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			j.t.Fatal(err)
		}
		jtis = append(jtis, s)
	}
	if err := rows.Err(); err != nil {
		j.t.Fatal(err)
	}
	if len(jtis) != 1 {
		j.t.Fatalf("cloud-app recorded %d emails to %s for the sync, want 1", len(jtis), addr)
	}
	return jtis[0]
}

func tokenHeader(j *journey, raw []byte) map[string]any {
	j.t.Helper()
	seg, _, _ := strings.Cut(strings.TrimSpace(string(raw)), ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		j.t.Fatalf("token header: %v", err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		j.t.Fatalf("token header: %v", err)
	}
	return h
}

func sortedKeys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Step 3: in dc-app, sign in, Edit sync settings, Import Token by dragging
// the downloaded file onto the drop zone; the preview shows the verified
// source site and the message; enter a name; Import; the new row is there.
func (j *journey) step3Import() {
	j.t.Helper()
	d := j.dc
	d.navigate(j.cfg.dcURL() + "/space-sync")
	d.waitJS("the sign-in form", `!!document.getElementById('username') && !!document.getElementById('password')`)
	d.do("sign in", chromedp.SendKeys(chromedp.ID("username"), j.adminUser), chromedp.SendKeys(chromedp.ID("password"), j.adminPass))
	d.shot("3-dc-sign-in", true)
	d.do("submit", chromedp.Submit(chromedp.ID("password")))
	d.waitJS("Edit sync settings", `(() => { const h = document.getElementById('settings-title'); const b = document.getElementById('import-open'); return !!h && h.textContent === 'Edit sync settings' && !!b && !b.disabled; })()`)
	d.shot("3-dc-synced-spaces", false)
	d.do("Import Token", chromedp.Click(chromedp.ID("import-open")))
	d.waitJS("the drop zone", `document.getElementById('import-dialog').open && !!document.getElementById('dropzone')`)
	d.dropFile("#dropzone", j.downloadPath)
	d.waitJS("the preview", `!document.getElementById('import-preview').hidden || !document.getElementById('import-error').hidden`)
	if eval[bool](d, `!document.getElementById('import-error').hidden`) {
		d.fail("preview", fmt.Errorf("refused: %s: %s", d.text("#import-error-title"), d.text("#import-error-text")))
	}
	site := d.text("#pv-site") + " " + d.text("#pv-site-base")
	if !strings.Contains(site, "localhost:"+port(j.cfg.addrs["CONFLUENCE_SIM_ADDR"])) {
		j.t.Errorf("the verified source site is %q, want the simulator's site %s/wiki", site, j.cfg.confluenceURL())
	}
	if got := eval[string](d, `document.getElementById('pv-message').textContent`); got != downloadMessage {
		j.t.Errorf("the preview quotes %q, want the sender's message %q", got, downloadMessage)
	}
	if got := d.text("#pv-space"); got != spaceName+" ("+spaceKey+")" {
		j.t.Errorf("the preview's space is %q", got)
	}
	if got := d.text("#pv-perms"); !strings.Contains(got, group) {
		j.t.Errorf("the preview's permissions are %q, want %s among them", got, group)
	}
	if got := d.text("#pv-comments") + "/" + d.text("#pv-labels"); got != "Synced/Synced" {
		j.t.Errorf("the preview's comments/labels are %q", got)
	}
	d.do("name", clearField("sync-name"), chromedp.SendKeys(chromedp.ID("sync-name"), dcName))
	d.shot("3-dc-preview", true)
	d.do("Import", chromedp.Click(chromedp.ID("import-submit")))
	d.waitJS("the new row", `(() => { const r = document.querySelector('tr.is-highlighted .space-name'); return !!r && r.textContent === `+jsString(dcName)+`; })()`)
	if got := d.text("tr.is-highlighted .status-lozenge"); got != "Linked" {
		j.t.Errorf("the new row's status is %q, want Linked", got)
	}
	if n := eval[int](d, `document.querySelectorAll('#spaces-table tbody tr').length`); n != 1 {
		j.t.Errorf("%d synced spaces, want 1", n)
	}
	d.shot("3-dc-imported", true)
}

// instanceName is how dc-app names itself to cloud-app.
func (j *journey) instanceName() string {
	return "Confluence Data Center at 127.0.0.1:" + port(j.cfg.addrs["DC_APP_ADDR"])
}

// Step 4: back in the Confluence simulator the row shows SYNCED and names
// the Data Center instance.
func (j *journey) step4Synced() {
	j.t.Helper()
	b := j.sim
	b.navigate(j.cfg.confluenceURL() + "/wiki/plugins/servlet/ac/" + appKey + "/space-sync")
	b.attachFrame(j.cfg.cloudURL() + "/pages/space-sync")
	b.do("Edit sync settings", chromedp.Click(chromedp.CSS(`button[aria-label="Edit sync settings of `+spaceName+`"]`)))
	b.waitJS("the row", `document.querySelectorAll('#syncs-body tr').length === 1`)
	if got := b.text("#syncs-body tr .lozenge"); !strings.EqualFold(got, "Synced") {
		j.t.Errorf("the row's status is %q, want SYNCED", got)
	}
	if got := b.text("#syncs-body tr"); !strings.Contains(got, j.instanceName()) {
		j.t.Errorf("the row does not name the Data Center instance %q: %q", j.instanceName(), got)
	}
	b.shot("4-cloud-synced", true)
	j.openAction("View details")
	b.waitJS("the details", `document.getElementById('details-body').textContent.includes(`+jsString(j.instanceName())+`)`)
	if got := b.text("#details-body"); !strings.Contains(got, "Used") {
		j.t.Errorf("the details do not show the token used: %q", got)
	}
	b.shot("4-cloud-details", false)
	b.do("close the details", chromedp.KeyEvent(kb.Escape))
}

// Step 5: the same file again shows "already used"; a token minted with
// the stack's key and an iat more than 7 days old shows "expired"; a plain
// user cannot create a sync or get a token.
func (j *journey) step5Refusals() {
	j.t.Helper()
	d := j.dc
	d.navigate(j.cfg.dcURL() + "/space-sync")
	d.waitJS("Import Token", `!!document.getElementById('import-open') && !document.getElementById('import-open').disabled`)
	d.do("Import Token", chromedp.Click(chromedp.ID("import-open")))
	d.waitJS("the drop zone", `document.getElementById('import-dialog').open`)
	d.dropFile("#dropzone", j.downloadPath)
	d.waitJS("the refusal of the used file", `!document.getElementById('import-error').hidden && document.getElementById('import-error-title').textContent !== ''`)
	if got := d.text("#import-error-title"); got != "This token has already been imported" && got != "This token has already been used" {
		j.t.Errorf("importing the same file again says %q, want already used", got)
	}
	if n := eval[int](d, `document.querySelectorAll('#spaces-table tbody tr').length`); n != 1 {
		j.t.Errorf("%d synced spaces after the second import, want 1", n)
	}
	if eval[bool](d, `!document.getElementById('import-preview').hidden`) {
		j.t.Error("a preview is shown for the used file")
	}
	d.do("show the refusal", scrollIntoView("import-error"))
	d.shot("5-dc-already-used", false)

	// An expired token: the stack's key, an iat eight days ago (the clock
	// is injected into the claims; the services' clocks are not touched).
	old := time.Now().Add(-8 * 24 * time.Hour)
	c := j.downloadClaims
	claims := token.NewClaims(j.cfg.cloudURL(), old, c.Site, c.Space, c.Sync, "minted eight days ago")
	expired, err := token.Mint(j.keys, claims)
	if err != nil {
		j.t.Fatal(err)
	}
	j.addSecret("expired token", expired)
	// cloud-app itself, which holds the keys, finds it well-formed and
	// expired: so it is the stack's key, and only the age is wrong.
	if code := j.cloudPreviewCode(expired); code != "token_expired" {
		j.t.Errorf("cloud-app's preview of the old token answers %q, want token_expired", code)
	}
	path := filepath.Join(j.t.TempDir(), spaceKey+"-old.token")
	if err := os.WriteFile(path, []byte(expired+"\n"), 0o600); err != nil {
		j.t.Fatal(err)
	}
	d.do("clear the refusal", chromedp.Evaluate[chromedp.Void](`document.getElementById('import-error-title').textContent = ''`))
	d.dropFile("#dropzone", path)
	d.waitJS("the refusal of the expired file", `!document.getElementById('import-error').hidden && document.getElementById('import-error-title').textContent !== ''`)
	if got := d.text("#import-error-title"); got != "This token has expired" {
		j.t.Errorf("the old token says %q, want expired", got)
	}
	d.do("show the refusal", scrollIntoView("import-error"))
	d.shot("5-dc-expired", false)
	d.do("close", chromedp.KeyEvent(kb.Escape))

	// A plain user sees the space and its sync but can neither create a
	// sync nor get a token: not in the page, and not by calling the API.
	b := j.sim
	j.openSpaceSyncAs(patID, "Pat Plain", "")
	j.captureJWTs(b)
	if n := eval[int](b, `document.querySelectorAll('button[aria-label^="Edit sync settings of "]').length`); n != 0 {
		j.t.Errorf("a plain user is offered Edit sync settings for %d spaces", n)
	}
	b.do("View syncs", chromedp.Click(chromedp.CSS(`button[aria-label="View the syncs of `+spaceName+`"]`)))
	b.waitJS("the read-only view", `document.querySelectorAll('#syncs-body tr').length === 1`)
	if !eval[bool](b, `document.getElementById('create-sync').hidden`) {
		j.t.Error("a plain user is offered Create New Sync")
	}
	b.do("open the Actions menu", chromedp.Click(chromedp.CSS("#syncs-body .ss-actions")))
	b.waitJS("the Actions menu", `!document.getElementById('actions-menu').hidden`)
	if items := j.menuItems(); slices.Contains(items, "Send Token") || slices.Contains(items, "Download Token") || !slices.Contains(items, "View details") {
		j.t.Errorf("a plain user's Actions menu: %v", items)
	}
	b.shot("5-plain-user", false)
	b.do("close the menu", chromedp.KeyEvent(kb.Escape))

	// The API, with Pat's own context token: reading works (so the calls
	// below are authenticated), changing is forbidden.
	call := func(method, path, body string) int {
		return eval[int](b, `new Promise((ok, fail) => { AP.context.getToken(ok); setTimeout(() => fail(new Error('no context token')), 10000); })
			.then(tok => fetch(`+jsString(path)+`, {method: `+jsString(method)+`, headers: {'Authorization': 'JWT ' + tok, 'Content-Type': 'application/json'}`+
			map[bool]string{true: `, body: ` + jsString(body), false: ``}[body != ""]+`}))
			.then(r => r.status)`)
	}
	if got := call("GET", "/api/ui/spaces/"+spaceKey+"/syncs", ""); got != http.StatusOK {
		j.t.Errorf("a plain user reading the syncs: %d, want 200", got)
	}
	create := `{"name":"Pat's sync","permissions":[{"type":"group","id":"6d1f4c52-3b8e-4d0f-9a7c-1e2b3c4d5e03","name":"` + group + `"}],"syncComments":true,"syncLabels":true}`
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/api/ui/spaces/" + spaceKey + "/syncs", create},
		{"POST", "/api/ui/syncs/" + j.syncID + "/token-downloads", `{"message":"let me in"}`},
		{"POST", "/api/ui/syncs/" + j.syncID + "/token-emails", `{"to":"pat@example.org","subject":"x","message":"x"}`},
	} {
		if got := call(c.method, c.path, c.body); got != http.StatusForbidden {
			j.t.Errorf("a plain user: %s %s = %d, want 403", c.method, c.path, got)
		}
	}
}

// cloudPreviewCode asks cloud-app for a preview of tok, as dc-app does, and
// returns the refusal code ("" when it is usable).
func (j *journey) cloudPreviewCode(tok string) string {
	j.t.Helper()
	body, _ := json.Marshal(map[string]string{"token": tok})
	resp, err := http.Post(j.cfg.cloudURL()+"/api/v1/token-previews", "application/json", bytes.NewReader(body))
	if err != nil {
		j.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct {
		Error *struct {
			Code string `json:"code"`
		} `json:"error"`
		State string `json:"state"`
	}
	_ = json.Unmarshal(b, &out)
	if out.Error != nil {
		return out.Error.Code
	}
	if out.State != "" && out.State != "usable" {
		return out.State
	}
	return ""
}

// restart starts the stack again on the same data directory: the data and
// the generated secrets are kept, and no new password is made.
func (j *journey) restart() {
	j.t.Helper()
	kept := map[string]string{}
	files := []string{"devstack/dc-admin-password", "devstack/sendgrid-api-key"}
	if j.embedded {
		files = append(files, "cloud-app/secret.key", "cloud-app/token-keys", "dc-app/secret.key")
	}
	for _, f := range files {
		kept[f] = j.readData(f)
	}
	oldSecret := j.secrets["Connect shared secret"]
	oldBanner := j.st.banner

	// What a first start says, and a second must not.
	first := []string{"created the first admin account"}
	if j.embedded {
		first = append(first, "generated a new secret key (CLOUD_APP_SECRET_KEY", "generated a new secret key (DC_APP_SECRET_KEY", "generated a new token key set")
	}
	for _, s := range first {
		if !strings.Contains(j.st.out.String(), s) {
			j.t.Errorf("the first start did not say %q", s)
		}
	}
	j.st = startStack(j.t, j.cfg)
	out := j.st.out.String()
	for _, s := range append(first, "generated a new", "generated password") {
		if strings.Contains(out, s) {
			j.t.Errorf("the second start says %q:\n%s", s, j.st.out.tail(40))
		}
	}
	// The same sign-in, now with the note that the admin exists (and no
	// other change).
	if m := bannerSignIn.FindStringSubmatch(j.st.banner); m == nil || m[2] != j.adminUser || m[3] != j.adminPass {
		j.t.Errorf("the second start's banner has another sign-in:\n%s\nwas:\n%s", j.st.banner, oldBanner)
	}
	const existingNote = "  The dc-app admin was created on the first run; if you changed its password in dc-app, use yours.\n"
	if strings.Contains(oldBanner, existingNote) || strings.Replace(j.st.banner, existingNote, "", 1) != oldBanner {
		j.t.Errorf("the second start's banner differs other than by the note that the admin exists:\n%s\nwas:\n%s", j.st.banner, oldBanner)
	}
	j.banners = append(j.banners, oldBanner, j.st.banner)
	for f, v := range kept {
		if got := j.readData(f); got != v {
			j.t.Errorf("%s changed on the second start", f)
		}
	}
	var sim struct {
		SharedSecret string `json:"sharedSecret"`
	}
	_ = json.Unmarshal([]byte(j.readData("devstack/confluence-sim.json")), &sim)
	if sim.SharedSecret == "" || !strings.Contains(j.secretsFor(sim.SharedSecret), "Connect shared secret") || oldSecret == "" {
		j.t.Errorf("the Connect shared secret changed on the second start")
	}

	// dc-app still has the synced space, linked (its JSON API, as an admin).
	req, _ := http.NewRequest(http.MethodGet, j.cfg.dcURL()+"/api/v1/synced-spaces", nil)
	req.SetBasicAuth(j.adminUser, j.adminPass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		j.t.Fatal(err)
	}
	var list struct {
		Results []struct {
			Name   string `json:"name"`
			Status string `json:"status"`
		} `json:"results"`
	}
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || len(list.Results) != 1 || list.Results[0].Name != dcName || list.Results[0].Status != "LINKED" {
		j.t.Errorf("dc-app's synced spaces after the restart: %d %+v %v", resp.StatusCode, list, err)
	}

	// The Cloud side still has the sync, SYNCED (seen by the plain user,
	// who is still signed in to the simulator).
	b := j.sim
	b.navigate(j.cfg.confluenceURL() + "/wiki/plugins/servlet/ac/" + appKey + "/space-sync")
	b.attachFrame(j.cfg.cloudURL() + "/pages/space-sync")
	b.do("View syncs", chromedp.Click(chromedp.CSS(`button[aria-label="View the syncs of `+spaceName+`"]`)))
	b.waitJS("the row after the restart", `document.querySelectorAll('#syncs-body tr').length === 1`)
	if got := b.text("#syncs-body tr .lozenge"); !strings.EqualFold(got, "Synced") {
		j.t.Errorf("after the restart the row's status is %q, want SYNCED", got)
	}
	if got := eval[string](b, `document.querySelector('#syncs-body tr').dataset.syncId`); got != j.syncID {
		j.t.Errorf("after the restart the row is sync %s, want %s", got, j.syncID)
	}
	b.shot("restart-still-synced", false)
}

func (j *journey) secretsFor(v string) string {
	for k, s := range j.secrets {
		if s == v {
			return k
		}
	}
	return ""
}

// jwtLike matches a JWS or JWE in compact form: base64url JSON starting
// with {" and at least three dot-separated segments.
var jwtLike = regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*`)

// leaks lists the secrets (and anything shaped like a JWT) found in out.
func leaks(out string, secrets map[string]string) []string {
	var found []string
	for what, v := range secrets {
		if n := strings.Count(out, v); n > 0 {
			found = append(found, fmt.Sprintf("the %s (%d times)", what, n))
		}
	}
	for _, m := range jwtLike.FindAllString(out, 5) {
		found = append(found, fmt.Sprintf("a JWT-shaped string %.24s…", m))
	}
	slices.Sort(found)
	return found
}

// scanLogs checks every line the stack printed, both starts, for the
// secret values of the journey. The banner is the one place the admin
// password is meant to be printed; it is taken out first.
func (j *journey) scanLogs() {
	j.t.Helper()
	if len(j.secrets) < 10 {
		j.t.Fatalf("only %d secrets collected: %v", len(j.secrets), slices.Sorted(maps.Keys(j.secrets)))
	}
	// The scan finds what it looks for.
	for what, v := range j.secrets {
		if got := leaks("x "+v+" y", map[string]string{what: v}); len(got) == 0 {
			j.t.Fatalf("the scan does not find the %s", what)
		}
	}
	clean := true
	if len(j.banners) != len(j.logs) {
		j.t.Fatalf("%d banners for %d starts", len(j.banners), len(j.logs))
	}
	for i, out := range j.logs {
		banner := j.banners[i]
		if strings.Count(out, j.adminPass) != 1 || !strings.Contains(banner, j.adminPass) || !strings.Contains(out, banner) {
			j.t.Errorf("start %d: the admin password is printed %d times, want once, in the banner", i+1, strings.Count(out, j.adminPass))
		}
		out = strings.Replace(out, banner, "", 1)
		if found := leaks(out, j.secrets); len(found) > 0 {
			clean = false
			j.t.Errorf("start %d: the stack's output contains %s", i+1, strings.Join(found, ", "))
			for _, line := range strings.Split(out, "\n") {
				if len(leaks(line, j.secrets)) > 0 {
					j.t.Logf("  %.300s", redact(line, j.secrets))
				}
			}
		}
	}
	if clean {
		j.t.Logf("no secret in %d bytes of output; looked for %d secrets and any JWT", len(j.logs[0])+len(j.logs[1]), len(j.secrets))
	}
}

// redact replaces the secrets in a log line, so that a failure report
// shows where they were without repeating them.
func redact(line string, secrets map[string]string) string {
	for what, v := range secrets {
		line = strings.ReplaceAll(line, v, "«"+what+"»")
	}
	return jwtLike.ReplaceAllString(line, "«a JWT»")
}
