package detectors

import (
	"slices"
	"testing"
)

// contextValues are values of the generic rules by what passwordQuality
// makes of them: secrets (found) and code or templates (not found).
var contextValues = []struct {
	filter string
	found  []string
	not    []string
}{
	{"format string",
		[]string{"Xk8%pq2!vLm4Z", "Q9v}x{2Lm!4Zr", "pq%20Xk8!vLm4Zr"},
		[]string{"%s", "%(password)s", "%(client_secret)s", "{}", "{0}", "{password}", "{db_password}", "%d", "%v",
			"user-%-12s-pass", "client-%-24s-secret-%d", "%1$s-secret", "{self.password!r}", "{0:>12}-token-{1}"}},
	{"variable reference",
		[]string{"Xk8$pq2!vLm4Z", "Zr7%TnW!x9Lm", "s3cr3t-Value"},
		[]string{"$PASS", "${DB_PASSWORD}", "$(cat /run/secrets/db)", "%PASSWORD%", "%DB_SECRET_KEY_VALUE%", "{{ .Password }}",
			"{{password}}", "<%= password %>", "$env:DB_PASSWORD", "`cat /etc/db.pass`", "@DB_PASSWORD@", "#{db_password}", "$db_password"}},
	{"placeholder",
		[]string{"Password123!", "Tr0ub4dor&3Xq", "xkcd-Correct9Horse", "Xk8pq2vLm4Zr7TnW"},
		[]string{"<password>", "changeme", "xxxxxx", "xxxxxxxxxxxxxxxx", "****", "********", "your_password", "YOUR_PASSWORD_HERE",
			"example", "dummy", "secret", "...", "REDACTED", "your_api_key_here_please", "secret-password", "foo", "bar", "opensesame",
			"your-client-secret-goes-here", "your_api_key_from_the_dashboard"}},
	{"identifier",
		[]string{"Tr0ub4dor.3Xq9Z", "Kq9.Lm2!zT8w", "8fj3k2LQz", "Tr0ub4dor.3Xq9Zk7"},
		[]string{"self.password", "os.environ[\"X\"]", "os.getenv('X')", "getpass()", "getpass.getpass()", "config.db.pass",
			"request.form['password']", "this.password", "$this->password", "params[:password]", "settings.SECRET_KEY",
			"app.config.SECRET_KEY", "settings.GOOGLE_API_KEY", "None)", "kEnumerableProperty)", "password16)", "pwd2)"}},
	{"regular expression",
		[]string{"Xk8\\qz2!vLm4Z", "Tr0ub.4dor*3Xq", "Kq9.Lm2+zT8w", "Zr7*Tn.W!x9Lm"},
		[]string{"\\s.*#/", "^\\d{6,}$", "\\S+@\\S+", "^passwd:.*$", "root:.+:0:0", "\\bsecret\\b"}},
	{"encoded prose",
		[]string{"nzocd+KwXUSIofDD", "c2VjcjN0LVBhc3N3MHJkIQ==", "Ym05MGJYbHlaV0ZzY0dGemMzZHZjbVE9"},
		[]string{"bm90IG15IHJlYWwgcGFzc3dvcmQ=", "eW91ciBwYXNzd29yZCBoZXJl", "Y2hhbmdlIHRoaXMgdG8geW91ciBzZWNyZXQ="}},
	{"key name",
		[]string{"db_password_8Xq!", "Secret-Value-2024", "Secret-Value-2024x9Q"},
		[]string{"password", "PASSWORD", "DB_PASSWORD", "db-password", "pwd", "client_secret", "clientSecret", "oauth_client_secret",
			"newPassword", "userPassword", "apiKeyFromSettings"}},
}

// familyAffected lists, per filter, the families it applies to and whose
// syntax lets such values through their regexp, so that the filter is
// what must stop them: each needs a case found and a case not found.
// Identifiers and expressions are filtered in the strict key=value rules
// only (a command line or a URL is a credential by its syntax, and real
// passwords have brackets and dots); names of keys where the rule
// captures its key.
var familyAffected = map[string][]string{
	"format string": {"config-password", "config-secret", "netrc-credentials", "url-credentials", "database-url-credentials",
		"odbc-pwd", "pgpass-entry", "xml-password", "php-db-password", "shell-export-secret", "shell-pgpassword"},
	"variable reference": {"config-password", "config-secret", "netrc-credentials", "url-credentials", "database-url-credentials",
		"odbc-pwd", "pgpass-entry", "xml-password", "php-db-password", "shell-export-secret", "shell-pgpassword"},
	"placeholder": {"config-password", "config-secret", "generic-api-key", "netrc-credentials", "url-credentials",
		"database-url-credentials", "odbc-pwd", "pgpass-entry", "xml-password", "php-db-password", "shell-export-secret",
		"shell-pgpassword"},
	"identifier": {"config-password", "config-secret", "generic-api-key", "odbc-pwd", "xml-password"},
	"key name":   {"config-password", "config-secret", "generic-api-key", "odbc-pwd", "shell-export-secret"},
	// Patterns and base64-encoded phrases are filtered in the strict
	// key=value rules only.
	"regular expression": {"config-password", "odbc-pwd"},
	"encoded prose":      {"config-password", "config-secret", "generic-api-key", "odbc-pwd"},
}

// rawValue is the value a rule's regexp (and entropy bound) accepts in
// text before passwordQuality looks at it.
func rawValue(t *testing.T, r Rule, text string) (string, bool) {
	t.Helper()
	c, err := compileRule(r)
	if err != nil {
		t.Fatal(err)
	}
	rx := c.regexps()
	m := rx.re.FindStringSubmatch(text)
	if m == nil || m[r.SecretGroup] == "" {
		return "", false
	}
	v := m[r.SecretGroup]
	return v, r.Entropy == 0 || shannon([]byte(v)) >= r.Entropy
}

// TestGenericRuleContext: values that are code or templates (format
// strings, variable references, placeholders, identifiers and
// expressions, the key's own name) are not findings of the generic rules,
// and secrets that look a little like them still are, in every family the
// filter applies to.
func TestGenericRuleContext(t *testing.T) {
	e := testEngine(t, EngineOptions{})
	rules := map[string]Rule{}
	for _, r := range Builtin() {
		rules[r.ID] = r
	}
	type key struct{ filter, rule string }
	found, not := map[key]int{}, map[key]int{}
	for _, fam := range genericFamilies {
		r := rules[fam.rule]
		g := newGen(fam.rule + fam.pre)
		for _, cv := range contextValues {
			for _, v := range cv.found {
				text := fam.pre + v + fam.post
				if raw, ok := rawValue(t, r, text); !ok || raw != v {
					continue // the rule's own syntax rules it out
				}
				for enc, ms := range findIn(e, g, fam.rule, text) {
					if !hasSecret(ms, v) {
						t.Errorf("%s (%s, %q): %q not found in %q; got\n%s", fam.rule, cv.filter, enc, v, text, describe(ms))
					}
				}
				found[key{cv.filter, fam.rule}]++
			}
			if !slices.Contains(familyAffected[cv.filter], fam.rule) {
				continue
			}
			for _, v := range cv.not {
				text := fam.pre + v + fam.post
				if raw, ok := rawValue(t, r, text); !ok || raw != v {
					continue // its regexp alone stops it: not this filter's case
				}
				for enc, ms := range findIn(e, g, fam.rule, text) {
					if len(ms) > 0 {
						t.Errorf("%s (%s, %q): %q in %q is a finding:\n%s", fam.rule, cv.filter, enc, v, text, describe(ms))
					}
				}
				not[key{cv.filter, fam.rule}]++
			}
		}
	}
	for filter, fams := range familyAffected {
		for _, rule := range fams {
			if found[key{filter, rule}] == 0 || not[key{filter, rule}] == 0 {
				t.Errorf("%s: %s has %d cases found and %d not found, want both", filter, rule, found[key{filter, rule}], not[key{filter, rule}])
			}
		}
	}
}

// TestValueContext: what around a value makes it code or a name rather
// than a secret (the key it is assigned to, a closing bracket or comma
// after it, a sentence it stands in), case by case; "" means no finding.
func TestValueContext(t *testing.T) {
	e := testEngine(t, EngineOptions{})
	g := newGen("value context")
	for _, c := range []struct{ rule, text, secret string }{
		// the key's own name
		{"config-password", "password=password\n", ""},
		// a .netrc entry without a login is checked as strictly as a
		// key=value pair: prose is not one
		{"netrc-credentials", "A machine learning-based password strength evaluation library\n", ""},
		{"netrc-credentials", "machine db.internal password Xk8#pq2!vLm4Z\n", "Xk8#pq2!vLm4Z"},
		{"netrc-credentials", "machine db.internal login deploy password strength\n", "strength"},
		{"config-password", "db_password: db_password\n", ""},
		{"config-secret", "secret_key=SECRET_KEY_SETTING\n", ""},
		{"shell-export-secret", "export MYSQL_PASSWORD=MYSQL_PASSWORD\n", ""},
		{"shell-export-secret", "export S3_SECRET=s3-secret\n", ""},
		{"shell-export-secret", "export MYSQL_PASSWORD=Mysql_Password_9\n", "Mysql_Password_9"},
		{"odbc-pwd", "Server=db;Uid=sa;Pwd=pwd;\n", ""},
		// a name passed on in code
		{"config-password", "  password: kEnumerableProperty,\n", ""},
		{"config-password", "info := UserInfo1{Name: name16, Password: password16, Priv: 1}\n", ""},
		{"config-password", "db: {user: app, password: Xk8pq2vL9, host: db}\n", "Xk8pq2vL9"},
		{"config-password", "password: \"kEnumerable\",\n", "kEnumerable"},
		{"netrc-credentials", "f'machine {host} login {self.username} password {self.password}'\n", ""},
		{"odbc-pwd", "    def open(self, name, mode=\"r\", pwd=None):\n", ""},
		{"odbc-pwd", "        with self.open(member, pwd=pwd) as source:\n", ""},
		{"config-password", "    String password = proxyUser + \":\" + proxyPass;\n", ""},
		{"config-password", "  $password = $user . ':' . $pass;\n", ""},
		{"config-password", "password = cfgPassword || defaultPassword\n", ""},
		{"config-password", "password = Xk8pq2vL9 + suffix\n", "Xk8pq2vL9"},
		// the same in minified JavaScript (yarn 4's and pnpm's bundles,
		// installed by npm install -g), and a comparison
		{"config-password", `e.user=r.username||"",e.password=r.password||"",e.pathname=r.pathname` + "\n", ""},
		{"config-password", `return{name:t.env.YARN_INJECT_NPM_USER||"",password:t.env.YARN_INJECT_NPM_PASSWORD||""};` + "\n", ""},
		{"config-password", "function Sgt(t,e){return t.username===this.options.username&&t.password===this.options.password}var h1e=1\n", ""},
		{"config-password", "password=Xk8pq2vL9||\n", "Xk8pq2vL9||"},
		{"config-password", "password==Xk8pq2vL9\n", ""},
		{"config-password", "password = Tr0ub4dor # old\n", "Tr0ub4dor"},
		// prose and record layouts
		{"config-password", "        :param password: Unicode password.\n", ""},
		{"config-password", "passwd: contraseña actualizada correctamente\n", ""},
		{"config-password", "password: Xk8pq2vL9 # rotated in May\n", "Xk8pq2vL9"},
		{"config-password", "// \tgroupname:password:GID:user_list\n", ""},
		{"config-password", "HOST:PORT:BINDNAME:PASSWORD:BASEDN:FLAGS:\n", ""},
		{"config-password", "password=Xk8:pq2:vL9\n", "Xk8:pq2:vL9"},
		// text inside a JSON or C string: \n is the line break that
		// ends the value (a readme in yarn's cache metadata)
		{"config-password", `"readme": "#### To hash a password:\n\nTechnique 1 (generate a salt)\n",` + "\n", ""},
		{"config-password", `{"config": "user=app\npassword=Xk8pq2vL9\nhost=db"}` + "\n", "Xk8pq2vL9"},
		{"config-password", `{"config": "password=Xk8pq2vL9\r\n"}` + "\n", "Xk8pq2vL9"},
		{"config-password", `{"a": "password=Xk8\\npq2vL9"}` + "\n", `Xk8\\npq2vL9`},
		// escaped quotes end a value as quotes do: SQL in a string
		// (MariaDB's fill_help_tables.sql), JSON in JSON
		{"config-password", `'CHANGE MASTER TO \n MASTER_PASSWORD=\'new3cret\';\nSTART SLAVE;'` + "\n", "new3cret"},
		{"config-password", `{"body": "{\"password\": \"Xk8pq2vL9\"}"}` + "\n", "Xk8pq2vL9"},
		{"config-secret", `{"body": "{\"client_secret\": \"k8Zq!x2Lm9Pw4Rt7\"}"}` + "\n", "k8Zq!x2Lm9Pw4Rt7"},
		// a command line in a string: after an escaped line break, but
		// never across one (a debconf template's Finnish text, where
		// "mariadb-server -paketti" is "the mariadb-server package")
		{"shell-mysql-password", `"script": "set -e\nmysql -u root -pXk8pq2vL9 app\n"` + "\n", "Xk8pq2vL9"},
		{"shell-mysql-password", `Description-fi: hakemisto /var/lib/mysql ollaan poistamassa.\n\nJos joku muu mariadb-server -paketti jo käyttää tietoja` + "\n", ""},
		// a key that is a file's name, or a scope
		{"config-password", "# /etc/passwd: mysql:x:100:101:MariaDB Server:/nonexistent:/bin/false\n", ""},
		{"config-password", " Data::Password::zxcvbn is a Perl port of Dropbox's password strength\n", ""},
		{"config-password", " Text::Password::Pronounceable generates pronounceable passwords\n", ""},
		{"config-password", "passwd: Xk8pq2vL9\n", "Xk8pq2vL9"},
		// paths
		{"shell-export-secret", "export DB_PASSWORD_FILE=/run/secrets/db_password\n", ""},
		{"odbc-pwd", "env PWD=/home/app ls\n", ""},
		{"odbc-pwd", "Server=db;Uid=sa;Pwd=Q9/v!x2Lm;\n", "Q9/v!x2Lm"},
	} {
		for enc, ms := range findIn(e, g, c.rule, c.text) {
			switch {
			case c.secret == "" && len(ms) > 0:
				t.Errorf("%s (%q): %q is a finding:\n%s", c.rule, enc, c.text, describe(ms))
			case c.secret != "" && !hasSecret(ms, c.secret):
				t.Errorf("%s (%q): %q not found in %q:\n%s", c.rule, enc, c.secret, c.text, describe(ms))
			}
		}
	}
}

// TestGenericRuleRealSyntax: real secrets in real configuration syntax
// stay findings with their exact value.
func TestGenericRuleRealSyntax(t *testing.T) {
	e := testEngine(t, EngineOptions{})
	g := newGen("real")
	for _, c := range []struct{ rule, text, secret string }{
		{"config-password", "[client]\npassword = \"Xk8#pq2!vL\"\n", "Xk8#pq2!vL"},
		{"config-password", "DB_HOST=db\nDB_PASSWORD=s3cr3t-Value\n", "s3cr3t-Value"},
		{"config-password", "database:\n  user: app\n  password: 8fj3k2LQz\n", "8fj3k2LQz"},
		{"config-password", "password=Password123!\n", "Password123!"},
		{"config-password", "db: {user: app, password: Xk8pq2vL9, host: db}\n", "Xk8pq2vL9"},
		{"config-password", "password: \"kEnumerable\",\n", "kEnumerable"},
		{"shell-pgpassword", "PGPASSWORD=Pg8!xQ2z psql -h db\n", "Pg8!xQ2z"},
		{"netrc-credentials", "machine api.corp.internal\n  login ci\n  password 7f3c9a2b-1d4e\n", "7f3c9a2b-1d4e"},
		{"url-credentials", "[remote \"origin\"]\n\turl = https://deploy:Zx81kqPw7T@git.example.org/app.git\n", "Zx81kqPw7T"},
		{"odbc-pwd", "conn = \"Driver={ODBC Driver 18 for SQL Server};Server=db;Uid=sa;Pwd=Q9v!x2Lm;\"\n", "Q9v!x2Lm"},
		{"odbc-pwd", "Driver={...};Server=db;Uid=sa;Pwd=Q9v!x2Lm;\n", "Q9v!x2Lm"},
		{"config-secret", "SECRET_KEY = \"k8Zq!x2Lm9Pw4Rt7\"\n", "k8Zq!x2Lm9Pw4Rt7"},
		{"generic-api-key", "api_key: 9fQk2LmX8pZr4Tw7Vb\n", "9fQk2LmX8pZr4Tw7Vb"},
	} {
		for enc, ms := range findIn(e, g, c.rule, c.text) {
			if !hasSecret(ms, c.secret) {
				t.Errorf("%s (%q): %q not found in %q:\n%s", c.rule, enc, c.secret, c.text, describe(ms))
			}
		}
	}
}

// TestDocumentationValues: secrets printed in specifications are
// reported as examples, at low severity.
func TestDocumentationValues(t *testing.T) {
	e := testEngine(t, EngineOptions{})
	for _, c := range []struct{ rule, text, secret string }{
		{"generic-api-key", "{\"access_token\":\"2YotnFZFEjr1zCsicMWpAA\",\"token_type\":\"bearer\"}", "2YotnFZFEjr1zCsicMWpAA"},
		{"config-password", "password_mgr.add_password(None, uri, user='klem',\n    passwd='geheim$parole')\n", "geheim$parole"},
	} {
		ms := matchesOf(e.FindAll([]byte(c.text), ScanOptions{}), c.rule)
		if len(ms) != 1 || ms[0].Fingerprint != fp(c.secret) || ms[0].Severity != SeverityLow || ms[0].Meta["example"] != "true" {
			t.Errorf("%s in %q: want one low example finding, got:\n%s", c.rule, c.text, describe(ms))
		}
	}
}

func TestIsTemplate(t *testing.T) {
	for _, c := range []struct {
		v    string
		want bool
	}{
		{"%s", true}, {"%-10s", true}, {"%5d", true}, {"%q", true}, {"%+v", true}, {"%1$s", true},
		{"{}", true}, {"{0}", true}, {"{password}", true}, {"{self.password!r}", true}, {"{0:>10}", true},
		{"@DB_PASSWORD@", true}, {"`pwd`", true},
		{"Xk8%pq2", false}, {"ab%20cd", false}, {"100%", false}, {"{Q9!x}", false}, {"a{b", false}, {"p@ss@", false},
	} {
		if got := isTemplate([]byte(c.v)); got != c.want {
			t.Errorf("isTemplate(%q) = %v, want %v", c.v, got, c.want)
		}
	}
}
