package detectors

import (
	"bytes"
	"strings"
	"testing"
)

// ruleCase is a true positive in realistic context: text holds secret, and
// the rule must report it with fingerprint sha256(secret).
type ruleCase struct {
	rule   string
	text   string
	secret string
	sev    Severity          // expected severity; 0: the rule's
	meta   map[string]string // expected subset of Meta
	// noTrunc: the rule accepts variable-length values, so a truncated
	// secret is still a (shorter) secret and not a near miss.
	noTrunc bool
	neg     []string // extra near misses that must not match the rule
}

type caseFn func(g *gen) ruleCase

func ruleCases() []caseFn {
	var cs []caseFn
	add := func(f caseFn) { cs = append(cs, f) }
	simple := func(rule, before string, mk func(g *gen) string, after string, noTrunc bool) {
		add(func(g *gen) ruleCase {
			tok := mk(g)
			return ruleCase{rule: rule, text: before + tok + after, secret: tok, noTrunc: noTrunc}
		})
	}
	// cloud
	add(func(g *gen) ruleCase {
		id, sec := "AKIA"+g.s(csUpperD, 16), g.s(csB64, 40)
		return ruleCase{rule: "aws-access-key-pair", secret: sec, meta: map[string]string{"key_id": id},
			text: "[default]\nregion = eu-west-1\naws_access_key_id = " + id + "\naws_secret_access_key = " + sec + "\n",
			neg:  []string{"[default]\naws_access_key_id = " + id + "\nsha = " + g.s(csHex, 40) + "\n"}}
	})
	add(func(*gen) ruleCase {
		return ruleCase{rule: "aws-access-key-pair", sev: SeverityLow, secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
			text: "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"}
	})
	add(func(g *gen) ruleCase {
		id := "ASIA" + g.s(csUpperD, 16)
		return ruleCase{rule: "aws-access-key-id", secret: id, text: `{"AccessKeyId": "` + id + `", "Expiration": "2030-01-01"}`,
			neg: []string{"Continent: Asia/Kolkata timezone ASIAN markets", "ASIA" + g.s(csUpperD, 20)}}
	})
	add(func(*gen) ruleCase {
		return ruleCase{rule: "aws-access-key-id", sev: SeverityLow, secret: "AKIAIOSFODNN7EXAMPLE", text: "aws_access_key_id=AKIAIOSFODNN7EXAMPLE\n"}
	})
	simple("aws-secret-access-key", "AWS_SECRET_ACCESS_KEY=", func(g *gen) string { return g.s(csB64, 40) }, "\n", false)
	simple("aws-session-token", "aws_session_token = ", func(g *gen) string { return "IQoJb3JpZ2luX2Vj" + g.s(csB64, 300) }, "\n", true)
	simple("aws-mws-auth-token", "MWS_AUTH_TOKEN=", func(g *gen) string {
		return "amzn.mws." + g.s(csHex, 8) + "-" + g.s(csHex, 4) + "-" + g.s(csHex, 4) + "-" + g.s(csHex, 4) + "-" + g.s(csHex, 12)
	}, "\n", false)
	simple("gcp-api-key", `const GOOGLE_API_KEY = "`, func(g *gen) string { return "AIza" + g.s(csURL, 35) }, `";`, false)
	simple("gcp-oauth-client-secret", `{"web":{"client_id":"1234.apps.googleusercontent.com","client_secret":"`, func(g *gen) string { return "GOCSPX-" + g.s(csURL, 28) }, `"}}`, false)
	simple("gcp-oauth-access-token", "Authorization: Bearer ", func(g *gen) string { return "ya29." + g.s(csURL, 120) }, "\r\n", true)
	simple("gcp-oauth-refresh-token", `{"refresh_token": "`, func(g *gen) string { return "1//0" + g.s(csURL, 60) }, `"}`, true)
	simple("azure-storage-account-key", "AccountName=prodstore;AccountKey=", func(g *gen) string { return g.s(csB64, 86) + "==" }, ";EndpointSuffix=core.windows.net", false)
	add(func(g *gen) ruleCase {
		k := g.s(csB64, 86) + "=="
		return ruleCase{rule: "azure-storage-connection-string", secret: k, meta: map[string]string{"account": "prodstore01"},
			text: `"ConnectionString": "DefaultEndpointsProtocol=https;AccountName=prodstore01;AccountKey=` + k + `;EndpointSuffix=core.windows.net"`}
	})
	simple("azure-shared-access-key", "Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=", func(g *gen) string { return g.s(csB64, 43) + "=" }, "\n", false)
	simple("azure-sas-token", "https://acct.blob.core.windows.net/backups/db.bak?sv=2021-06-08&ss=b&srt=sco&sp=rwdlac&se=2030-01-01T00:00:00Z&st=2024-01-01T00:00:00Z&spr=https&sig=", func(g *gen) string { return g.s(csAlnum, 43) + "%3D" }, "\n", true)
	simple("azure-client-secret", "AZURE_CLIENT_SECRET=", func(g *gen) string { return g.s(csAlnum, 3) + "8Q~" + g.s(csURL+"~.", 34) }, "\n", false)
	simple("digitalocean-pat", "DIGITALOCEAN_ACCESS_TOKEN=", func(g *gen) string { return "dop_v1_" + g.s(csHex, 64) }, "\n", false)
	simple("digitalocean-oauth-token", "token: ", func(g *gen) string { return "doo_v1_" + g.s(csHex, 64) }, "\n", false)
	simple("digitalocean-refresh-token", "refresh: ", func(g *gen) string { return "dor_v1_" + g.s(csHex, 64) }, "\n", false)
	add(func(g *gen) ruleCase {
		id, sec := "LTAI"+g.s(csAlnum, 20), g.s(csAlnum, 30)
		return ruleCase{rule: "alibaba-access-key-pair", secret: sec, meta: map[string]string{"key_id": id},
			text: "access_key_id: " + id + "\naccess_key_secret: " + sec + "\n"}
	})
	simple("alibaba-access-key-id", "ALIBABA_CLOUD_ACCESS_KEY_ID=", func(g *gen) string { return "LTAI" + g.s(csAlnum, 20) }, "\n", true)
	simple("heroku-api-key", "HEROKU_API_KEY=", func(g *gen) string { return "HRKU-AA" + g.s(csURL, 58) }, "\n", false)
	simple("cloudflare-api-token", "CLOUDFLARE_API_TOKEN=", func(g *gen) string { return g.s(csURL, 40) }, "\n", false)
	// code hosting
	for _, p := range []struct{ rule, pfx string }{{"github-pat", "ghp_"}, {"github-oauth-token", "gho_"}, {"github-user-to-server-token", "ghu_"}, {"github-server-to-server-token", "ghs_"}, {"github-refresh-token", "ghr_"}} {
		add(func(g *gen) ruleCase {
			tok := g.githubToken(p.pfx)
			bad := tok[:39] + string("ab"[(strings.IndexByte("ab", tok[39])+1)%2])
			if tok[39] != 'a' && tok[39] != 'b' {
				bad = tok[:39] + "a"
			}
			return ruleCase{rule: p.rule, secret: tok, text: "GITHUB_TOKEN=" + tok + "\n", neg: []string{"GITHUB_TOKEN=" + bad + "\n"}}
		})
	}
	// A token as a URL's user name, as GitHub documents it for git over
	// HTTPS: found after the "//" (a "/" before the prefix is no boundary
	// elsewhere), and the URL rule's user metadata (its password is
	// x-oauth-basic) must not carry it in full (TestNoLeak).
	add(func(g *gen) ruleCase {
		tok := g.githubToken("ghp_")
		return ruleCase{rule: "github-pat", secret: tok, text: "\turl = https://" + tok + ":x-oauth-basic@github.com/acme/app.git\n"}
	})
	add(func(g *gen) ruleCase {
		tok := g.githubToken("ghs_")
		return ruleCase{rule: "github-server-to-server-token", secret: tok, text: "git clone https://" + tok + "@github.com/acme/app.git\n"}
	})
	simple("github-fine-grained-pat", "token: ", func(g *gen) string { return "github_pat_" + g.s(csAlnum, 22) + "_" + g.s(csAlnum, 59) }, "\n", false)
	simple("gitlab-pat", "GITLAB_TOKEN=", func(g *gen) string { return "glpat-" + g.s(csURL, 20) }, "\n", false)
	simple("gitlab-pipeline-trigger-token", "-F token=", func(g *gen) string { return "glptt-" + g.s(csHex, 40) }, " -F ref=main", false)
	simple("gitlab-runner-token", "  token = \"", func(g *gen) string { return "glrt-" + g.s(csURL, 20) }, "\"\n", false)
	simple("gitlab-deploy-token", "password: ", func(g *gen) string { return "gldt-" + g.s(csURL, 20) }, "\n", false)
	simple("gitlab-feed-token", "feed_token=", func(g *gen) string { return "glft-" + g.s(csURL, 20) }, "\n", false)
	simple("gitlab-runner-registration-token", "--registration-token ", func(g *gen) string { return "GR1348941" + g.s(csURL, 20) }, "\n", false)
	simple("gitlab-oauth-app-secret", "secret: ", func(g *gen) string { return "gloas-" + g.s(csHex, 64) }, "\n", false)
	simple("gitlab-agent-token", "token: ", func(g *gen) string { return "glagent-" + g.s(csURL, 50) }, "\n", false)
	simple("bitbucket-app-password", "BITBUCKET_APP_PASSWORD=", func(g *gen) string { return "ATBB" + g.s(csAlnum, 32) }, "\n", false)
	simple("bitbucket-client-secret", "BITBUCKET_CLIENT_SECRET=", func(g *gen) string { return g.s(csAlnum, 64) }, "\n", true)
	simple("atlassian-api-token", "JIRA_API_TOKEN=", func(g *gen) string { return "ATATT3" + g.s(csURL, 186) }, "\n", false)
	simple("circleci-personal-token", "CIRCLE_TOKEN=", func(g *gen) string { return "CCIPAT_" + g.s(csAlnum, 22) + "_" + g.s(csHex, 40) }, "\n", false)
	simple("buildkite-token", "BUILDKITE_API_TOKEN=", func(g *gen) string { return "bkua_" + g.s(csHex, 40) }, "\n", false)
	simple("sourcegraph-token", "SRC_ACCESS_TOKEN=", func(g *gen) string { return "sgp_" + g.s(csHex, 16) + "_" + g.s(csHex, 40) }, "\n", false)
	simple("npm-access-token", "//registry.npmjs.org/:_authToken=", func(g *gen) string { return "npm_" + g.s(csAlnum, 36) }, "\n", false)
	simple("npmrc-auth-token", "//npm.corp.io/:_authToken=", func(g *gen) string {
		return g.s(csHex, 8) + "-" + g.s(csHex, 4) + "-" + g.s(csHex, 4) + "-" + g.s(csHex, 12)
	}, "\n", true)
	add(func(*gen) ruleCase {
		a := b64("deploy:S3cr3tPass!")
		return ruleCase{rule: "npmrc-auth", secret: a, meta: map[string]string{"user": "deploy"}, text: "registry=https://npm.corp.io/\n_auth = " + a + "\nalways-auth=true\n", noTrunc: true}
	})
	simple("pypi-upload-token", "[pypi]\nusername = __token__\npassword = ", func(g *gen) string { return "pypi-AgEIcHlwaS5vcmc" + g.s(csURL, 70) }, "\n", true)
	simple("rubygems-api-key", "---\n:rubygems_api_key: ", func(g *gen) string { return "rubygems_" + g.s(csHex, 48) }, "\n", false)
	simple("clojars-token", "CLOJARS_PASSWORD=", func(g *gen) string { return "CLOJARS_" + g.s(csLowerD, 60) }, "\n", false)
	simple("dockerhub-pat", "echo ", func(g *gen) string { return "dckr_pat_" + g.s(csURL, 27) }, " | docker login -u ci --password-stdin\n", false)
	simple("dockerhub-oat", "DOCKER_TOKEN=", func(g *gen) string { return "dckr_oat_" + g.s(csURL, 32) }, "\n", false)
	simple("artifactory-api-key", "X-JFrog-Art-Api: ", func(g *gen) string { return "AKCp" + g.s(csAlnum, 69) }, "\r\n", false)
	// SaaS
	simple("slack-bot-token", "SLACK_BOT_TOKEN=", func(g *gen) string {
		return "xoxb-" + g.s("0123456789", 12) + "-" + g.s("0123456789", 13) + "-" + g.s(csAlnum, 24)
	}, "\n", false)
	simple("slack-user-token", "SLACK_TOKEN=", func(g *gen) string {
		return "xoxp-" + g.s("0123456789", 12) + "-" + g.s("0123456789", 12) + "-" + g.s("0123456789", 12) + "-" + g.s(csHex, 32)
	}, "\n", false)
	simple("slack-app-token", "SLACK_APP_TOKEN=", func(g *gen) string {
		return "xapp-1-A" + g.s(csUpperD, 10) + "-" + g.s("0123456789", 13) + "-" + g.s(csHex, 64)
	}, "\n", false)
	simple("slack-config-token", "token=", func(g *gen) string { return "xoxe.xoxp-1-" + g.s(csAlnum, 160) }, "\n", false)
	simple("slack-legacy-token", "token=", func(g *gen) string { return "xoxs-" + g.s(csAlnum, 40) }, "\n", true)
	simple("slack-webhook-url", "WEBHOOK=https://", func(g *gen) string {
		return "hooks.slack.com/services/T" + g.s(csUpperD, 8) + "/B" + g.s(csUpperD, 10) + "/" + g.s(csAlnum, 24)
	}, "\n", false)
	simple("slack-workflow-webhook-url", "url: https://", func(g *gen) string {
		return "hooks.slack.com/workflows/T" + g.s(csUpperD, 8) + "/" + g.s("0123456789", 10) + "/" + g.s("0123456789", 9) + "/" + g.s(csHex, 32)
	}, "\n", false)
	simple("stripe-secret-key", "STRIPE_SECRET_KEY=", func(g *gen) string { return "sk_live_" + g.s(csAlnum, 24) }, "\n", false)
	simple("stripe-restricted-key", "key = \"", func(g *gen) string { return "rk_live_" + g.s(csAlnum, 24) }, "\"\n", false)
	simple("stripe-test-secret-key", "Stripe.api_key = '", func(g *gen) string { return "sk_test_" + g.s(csAlnum, 24) }, "'\n", false)
	simple("stripe-webhook-secret", "STRIPE_WEBHOOK_SECRET=", func(g *gen) string { return "whsec_" + g.s(csAlnum, 32) }, "\n", false)
	simple("twilio-api-key", "TWILIO_API_KEY=", func(g *gen) string { return "SK" + g.s(csHex, 32) }, "\n", false)
	simple("twilio-auth-token", "TWILIO_AUTH_TOKEN=", func(g *gen) string { return g.s(csHex, 32) }, "\n", false)
	simple("sendgrid-api-key", `SENDGRID_API_KEY="`, func(g *gen) string { return "SG." + g.s(csURL, 22) + "." + g.s(csURL, 43) }, "\"\n", false)
	simple("mailgun-api-key", "MAILGUN_API_KEY=", func(g *gen) string { return "key-" + g.s(csHex, 32) }, "\n", false)
	simple("mailgun-signing-key", "mailgun webhook signing key: ", func(g *gen) string { return g.s(csHex, 32) + "-" + g.s(csHex, 8) + "-" + g.s(csHex, 8) }, "\n", false)
	simple("mailchimp-api-key", "MAILCHIMP_API_KEY=", func(g *gen) string { return g.s(csHex, 32) + "-us14" }, "\n", false)
	simple("vault-service-token", "export VAULT_ADDR=https://vault:8200\nVAULT_TOKEN=", func(g *gen) string { return "hvs." + g.s(csURL, 90) }, "\n", true)
	simple("vault-batch-token", "token: ", func(g *gen) string { return "hvb." + g.s(csURL, 138) }, "\n", true)
	simple("terraform-cloud-token", "credentials \"app.terraform.io\" {\n  token = \"", func(g *gen) string { return g.s(csAlnum, 14) + ".atlasv1." + g.s(csURL, 67) }, "\"\n}\n", false)
	simple("openai-api-key", "OPENAI_API_KEY=", func(g *gen) string { return "sk-proj-" + g.s(csURL, 40) + "T3BlbkFJ" + g.s(csURL, 40) }, "\n", true)
	simple("anthropic-api-key", "ANTHROPIC_API_KEY=", func(g *gen) string { return "sk-ant-api03-" + g.s(csURL, 93) + "AA" }, "\n", false)
	simple("anthropic-admin-key", "key: ", func(g *gen) string { return "sk-ant-admin01-" + g.s(csURL, 93) + "AA" }, "\n", false)
	simple("huggingface-token", "HF_TOKEN=", func(g *gen) string { return "hf_" + g.s(csLetters, 34) }, "\n", false)
	simple("huggingface-org-token", "token: ", func(g *gen) string { return "api_org_" + g.s(csLetters, 34) }, "\n", false)
	simple("shopify-access-token", "X-Shopify-Access-Token: ", func(g *gen) string { return "shpat_" + g.s(csHex, 32) }, "\r\n", false)
	simple("shopify-custom-app-token", "token=", func(g *gen) string { return "shpca_" + g.s(csHex, 32) }, "\n", false)
	simple("shopify-private-app-token", "token=", func(g *gen) string { return "shppa_" + g.s(csHex, 32) }, "\n", false)
	simple("shopify-shared-secret", "secret=", func(g *gen) string { return "shpss_" + g.s(csHex, 32) }, "\n", false)
	simple("square-access-token", "SQUARE_ACCESS_TOKEN=", func(g *gen) string { return "EAAA" + g.s(csURL, 60) }, "\n", false)
	simple("square-oauth-secret", "SQUARE_APP_SECRET=", func(g *gen) string { return "sq0csp-" + g.s(csURL, 43) }, "\n", false)
	simple("discord-bot-token", "DISCORD_BOT_TOKEN=", func(g *gen) string { return "M" + g.s(csAlnum, 23) + "." + g.s(csURL, 6) + "." + g.s(csURL, 27) }, "\n", false)
	simple("discord-webhook-url", "hook = https://", func(g *gen) string { return "discord.com/api/webhooks/" + g.s("0123456789", 18) + "/" + g.s(csURL, 68) }, "\n", false)
	simple("telegram-bot-token", "TELEGRAM_BOT_TOKEN=", func(g *gen) string { return g.s("123456789", 9) + ":AA" + g.s(csURL, 33) }, "\n", false)
	simple("sentry-org-token", "SENTRY_AUTH_TOKEN=", func(g *gen) string { return "sntrys_eyJ" + g.s(csURL, 100) }, "\n", true)
	simple("sentry-user-token", "SENTRY_AUTH_TOKEN=", func(g *gen) string { return "sntryu_" + g.s(csHex, 64) }, "\n", false)
	simple("newrelic-user-api-key", "NEW_RELIC_API_KEY=", func(g *gen) string { return "NRAK-" + g.s(csUpperD, 27) }, "\n", false)
	simple("newrelic-insert-key", "insert_key: ", func(g *gen) string { return "NRII-" + g.s(csURL, 32) }, "\n", false)
	simple("linear-api-key", "LINEAR_API_KEY=", func(g *gen) string { return "lin_api_" + g.s(csAlnum, 40) }, "\n", false)
	simple("postman-api-key", "POSTMAN_API_KEY=", func(g *gen) string { return "PMAK-" + g.s(csHex, 24) + "-" + g.s(csHex, 34) }, "\n", false)
	simple("pulumi-access-token", "PULUMI_ACCESS_TOKEN=", func(g *gen) string { return "pul-" + g.s(csHex, 40) }, "\n", false)
	simple("grafana-cloud-token", "GRAFANA_CLOUD_TOKEN=", func(g *gen) string { return "glc_" + g.s(csB64, 80) }, "\n", true)
	simple("grafana-service-account-token", "GRAFANA_TOKEN=", func(g *gen) string { return "glsa_" + g.s(csAlnum, 32) + "_" + g.s(csHex, 8) }, "\n", false)
	simple("doppler-token", "DOPPLER_TOKEN=", func(g *gen) string { return "dp.pt." + g.s(csAlnum, 43) }, "\n", false)
	simple("databricks-token", "DATABRICKS_TOKEN=", func(g *gen) string { return "dapi" + g.s("0123456789abcdefgh", 32) }, "\n", false)
	simple("dynatrace-token", "DT_API_TOKEN=", func(g *gen) string { return "dt0c01." + g.s(csUpperD, 24) + "." + g.s(csUpperD, 64) }, "\n", false)
	simple("planetscale-token", "PLANETSCALE_SERVICE_TOKEN=", func(g *gen) string { return "pscale_tkn_" + g.s(csURL, 43) }, "\n", false)
	simple("planetscale-password", "DATABASE_PASSWORD=", func(g *gen) string { return "pscale_pw_" + g.s(csURL, 43) }, "\n", false)
	simple("tailscale-key", "TS_AUTHKEY=", func(g *gen) string { return "tskey-auth-k" + g.s(csAlnum, 10) + "-" + g.s(csAlnum, 30) }, "\n", false)
	simple("mapbox-secret-token", "MAPBOX_TOKEN=", func(g *gen) string { return "sk.eyJ" + g.s(csURL, 60) + "." + g.s(csURL, 22) }, "\n", true)
	simple("brevo-api-key", "BREVO_API_KEY=", func(g *gen) string { return "xkeysib-" + g.s(csHex, 64) + "-" + g.s(csAlnum, 16) }, "\n", false)
	simple("flutterwave-secret-key", "FLW_SECRET_KEY=", func(g *gen) string { return "FLWSECK-" + g.s("0123456789abcdefgh", 32) + "-X" }, "\n", false)
	simple("contentful-pat", "CONTENTFUL_TOKEN=", func(g *gen) string { return "CFPAT-" + g.s(csURL, 43) }, "\n", false)
	simple("readme-api-key", "README_API_KEY=", func(g *gen) string { return "rdme_" + g.s(csLowerD, 70) }, "\n", false)
	simple("prefect-api-key", "PREFECT_API_KEY=", func(g *gen) string { return "pnu_" + g.s(csAlnum, 36) }, "\n", false)
	simple("onepassword-service-account-token", "OP_SERVICE_ACCOUNT_TOKEN=", func(g *gen) string { return "ops_eyJ" + g.s(csB64, 300) }, "\n", true)
	simple("infracost-api-key", "INFRACOST_API_KEY=", func(g *gen) string { return "ico-" + g.s(csAlnum, 32) }, "\n", false)
	simple("duffel-api-token", "DUFFEL_TOKEN=", func(g *gen) string { return "duffel_live_" + g.s(csURL, 43) }, "\n", false)
	simple("easypost-api-key", "EASYPOST_API_KEY=", func(g *gen) string { return "EZAK" + g.s(csLowerD, 54) }, "\n", false)
	simple("frameio-api-token", "FRAMEIO_TOKEN=", func(g *gen) string { return "fio-u-" + g.s(csURL, 64) }, "\n", false)
	simple("okta-api-token", "OKTA_API_TOKEN=", func(g *gen) string { return "00" + g.s(csURL, 40) }, "\n", false)
	simple("datadog-api-key", "DD_API_KEY=", func(g *gen) string { return g.s(csHex, 32) }, "\n", false)
	simple("facebook-access-token", "access_token=", func(g *gen) string { return "EAACEdEose0cBA" + g.s(csAlnum, 100) }, "&fields=id", true)
	simple("age-secret-key", "# created: 2024-05-01T10:00:00Z\n# public key: age1qqqq\n", func(g *gen) string { return "AGE-SECRET-KEY-1" + g.s(csBech32, 58) }, "\n", false)
	// JWT
	add(func(g *gen) ruleCase {
		tok := jwtToken(g)
		bad := "eyJhbGciOiJIUzI1NiJ9.eyJ" + g.s(csURL, 30) + "." + g.s(csURL, 43) // payload not JSON
		return ruleCase{rule: "jwt", secret: tok, text: "Authorization: Bearer " + tok + "\r\n", noTrunc: true, neg: []string{"Authorization: Bearer " + bad + "\r\n"}}
	})
	// credentials in files
	add(func(*gen) ruleCase {
		return ruleCase{rule: "url-credentials", secret: "Xk9mQ2vLp7", meta: map[string]string{"user": "deploy", "host": "git.internal.corp"},
			text: "git clone https://deploy:Xk9mQ2vLp7@git.internal.corp/infra/repo.git\n", noTrunc: true,
			neg: []string{"see https://docs.internal.corp/a:b for details", "url = https://user:password@host.corp/x", "https://${USER}:${PASS}@host.corp/"}}
	})
	add(func(g *gen) ruleCase {
		tok := g.githubToken("ghp_")
		return ruleCase{rule: "url-credentials", secret: tok, meta: map[string]string{"user": "alice", "host": "github.com"},
			text: "https://alice:" + tok + "@github.com\n", noTrunc: true} // ~/.git-credentials
	})
	add(func(*gen) ruleCase {
		return ruleCase{rule: "url-credentials", sev: SeverityLow, secret: "Hunter2x", text: "curl https://bob:Hunter2x@api.example.com/v1\n"}
	})
	add(func(*gen) ruleCase {
		return ruleCase{rule: "database-url-credentials", secret: "S3cretPassw0rd", meta: map[string]string{"user": "app", "host": "db.internal"},
			text: "DATABASE_URL=postgres://app:S3cretPassw0rd@db.internal:5432/app?sslmode=require\n", noTrunc: true}
	})
	add(func(*gen) ruleCase {
		return ruleCase{rule: "netrc-credentials", secret: "7f3c9a2b-1d4e", meta: map[string]string{"host": "api.heroku.com", "user": "me@corp.io"},
			text: "machine api.heroku.com\n  login me@corp.io\n  password 7f3c9a2b-1d4e\nmachine git.heroku.com\n", noTrunc: true}
	})
	add(func(*gen) ruleCase {
		return ruleCase{rule: "pgpass-entry", secret: "Pg!Secret42", meta: map[string]string{"host": "db.internal", "user": "appuser"},
			text: "# hostname:port:database:username:password\ndb.internal:5432:appdb:appuser:Pg!Secret42\n", noTrunc: true}
	})
	add(func(*gen) ruleCase {
		a := b64("robot:Zx81!kq0pLmn")
		return ruleCase{rule: "docker-config-auth", secret: a, meta: map[string]string{"user": "robot"},
			text: `{"auths":{"registry.corp.io":{"auth":"` + a + `"}}}`, noTrunc: true,
			neg: []string{`{"auth":"` + b64("nocolonhere") + `"}`, `{"auth": "bearer"}`}}
	})
	simple("docker-config-identitytoken", `{"auths":{"x.azurecr.io":{"auth":"","identitytoken":"`, func(g *gen) string { return g.s(csURL, 64) }, `"}}}`, true)
	add(func(g *gen) ruleCase {
		tok := g.s(csAlnum, 48)
		return ruleCase{rule: "kubeconfig-token", secret: tok, text: "users:\n- name: admin\n  user:\n    token: " + tok + "\n", noTrunc: true}
	})
	simple("wireguard-private-key", "[Interface]\nAddress = 10.8.0.2/24\nPrivateKey = ", func(g *gen) string { return b64(string(g.bytes(32))) }, "\nListenPort = 51820\n", false)
	// as slappasswd makes them (SSHA: SHA-1 of the password and a 4-byte
	// salt), in slapd.conf and in slapd.d's LDIF, where the Debian
	// package's install keeps olcRootPW base64'd
	simple("ldap-password-hash", "database mdb\nrootdn \"cn=admin,dc=example,dc=org\"\nrootpw ", func(g *gen) string { return "{SSHA}" + b64(string(g.bytes(24))) }, "\n", true)
	simple("ldap-password-hash", "dn: uid=alice,ou=people,dc=example,dc=org\nuserPassword: ", func(g *gen) string { return "{CRYPT}$6$" + g.s(csAlnum, 16) + "$" + g.s(csAlnum, 86) }, "\n", true)
	simple("ldap-password-hash-base64", "olcRootDN: cn=admin,dc=nodomain\nolcRootPW:: ", func(g *gen) string { return b64("{SSHA}" + b64(string(g.bytes(24)))) }, "\n", true)
	// the debian-installer's preseed file (a Packer template's
	// http/preseed.cfg), and debconf-set-selections' input
	add(func(g *gen) ruleCase {
		pw := g.s(csAlnum, 12)
		return ruleCase{rule: "debconf-preseed-password", secret: pw, noTrunc: true,
			text: "d-i passwd/root-login boolean true\nd-i passwd/root-password password " + pw + "\nd-i passwd/make-user boolean false\n",
			neg:  []string{"#d-i passwd/root-password password " + pw + "\n", "d-i passwd/root-password password\n", "Template: mariadb-server/root_password\nType: password\n"}}
	})
	simple("debconf-preseed-password", "mariadb-server\tmysql-server/root_password\tpassword\t", func(g *gen) string { return g.s(csAlnum, 10) + "!" }, "\n", true)
	// debconf's passwords.dat as debconf-set-selections and a
	// package's db_set leave it (the Value of a password question)
	add(func(g *gen) ruleCase {
		pw := g.s(csAlnum, 11) + "7"
		return ruleCase{rule: "debconf-password", secret: pw, noTrunc: true,
			text: "Name: phpmyadmin/mysql/app-pass\nTemplate: phpmyadmin/mysql/app-pass\nValue: " + pw + "\nOwners: phpmyadmin\nFlags: seen\n\n",
			neg: []string{
				"Name: openssh-server/password-authentication\nTemplate: openssh-server/password-authentication\nValue: true\nOwners: openssh-server\n",
				"Name: slapd/password1\nTemplate: slapd/password1\nValue: \nOwners: slapd\n",
				"Name: tzdata/Areas\nTemplate: tzdata/Areas\nValue: Europe" + pw + "\nOwners: tzdata\n",
				"Template: mariadb-server/root_password\nType: password\nDescription: New password for the MariaDB \"root\" user:\n",
			}}
	})
	// dbconfig-common's package configuration (dbc_write_package_config)
	// and the includes dbconfig-generate-include writes from it
	add(func(g *gen) ruleCase {
		pw := g.s(csAlnum, 11) + "7"
		return ruleCase{rule: "dbconfig-password", secret: pw, noTrunc: true,
			text: "# dbc_dbpass: database user password\n#\tthe password to use with the above username when connecting\n#\tto a database, if one is required\ndbc_dbpass='" + pw + "'\n\n# dbc_dballow: allowed host to connect from\n",
			neg:  []string{"dbc_dbpass=''\n", "$dbpass = $_POST['dbpass'];\n", "# dbc_dbpass: database user password\n"}}
	})
	simple("dbconfig-password", "<?php\n$dbuser='acme';\n$dbpass='", func(g *gen) string { return g.s(csAlnum, 11) + "7" }, "';\n$basepath='';\n", true)
	simple("dbconfig-password", "our $dbuser='acme';\nour $dbpass='", func(g *gen) string { return g.s(csAlnum, 11) + "7" }, "';\nour $basepath='';\n", true)
	simple("dbconfig-password", "dbuser='acme'\ndbpass='", func(g *gen) string { return g.s(csAlnum, 11) + "7" }, "'\nbasepath=''\n", true)
	simple("wireguard-preshared-key", "[Peer]\nPresharedKey = ", func(g *gen) string { return b64(string(g.bytes(32))) }, "\n", false)
	// as rndc-confgen writes /etc/bind/rndc.key at bind9's install, and
	// as Knot's keymgr -t prints a key
	simple("dns-tsig-key", "key \"rndc-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"", func(g *gen) string { return b64(string(g.bytes(32))) }, "\";\n};\n", false)
	simple("dns-tsig-key", "key:\n  - id: xfr\n    algorithm: hmac-sha512\n    secret: ", func(g *gen) string { return b64(string(g.bytes(64))) }, "\n", false)
	add(func(*gen) ruleCase {
		return ruleCase{rule: "cloud-init-chpasswd-list", secret: "R00tPass!x", meta: map[string]string{"user": "root"}, noTrunc: true,
			text: "#cloud-config\nchpasswd:\n  expire: false\n  list: |\n    root:R00tPass!x\n    ubuntu:RANDOM\n"}
	})
	add(func(*gen) ruleCase {
		return ruleCase{rule: "cloud-init-chpasswd-users", secret: "Ub!ntu2024", meta: map[string]string{"user": "ubuntu"}, noTrunc: true,
			text: "#cloud-config\nchpasswd:\n  users:\n    - name: ubuntu\n      password: Ub!ntu2024\n      type: text\n"}
	})
	add(func(*gen) ruleCase {
		return ruleCase{rule: "cloud-init-plain-text-passwd", secret: "0psPass!9", noTrunc: true,
			text: "users:\n  - name: ops\n    plain_text_passwd: 0psPass!9\n    lock_passwd: false\n"}
	})
	add(func(*gen) ruleCase {
		return ruleCase{rule: "config-password", secret: "Tr0ub4dor#3", noTrunc: true,
			text: "[database]\nuser = app\npassword = Tr0ub4dor#3\n",
			neg: []string{"password_min_length = 12\n", "password = ${DB_PASSWORD}\n", "password: changeme\n", "password = self.password\n",
				"password: correcthorse\n", "fmt.Errorf(\"password: %s\", err)\n", "password = os.getenv(\"DB_PASS\")\n", "password=$DB_PASS\n",
				"password: <your-password-here>\n", "password = \"xxxxxxxx\"\n"}}
	})
	add(func(*gen) ruleCase {
		return ruleCase{rule: "xml-password", secret: "Xml!Pass99", noTrunc: true,
			text: "<datasource><username>app</username><password>Xml!Pass99</password></datasource>"}
	})
	add(func(*gen) ruleCase {
		return ruleCase{rule: "windows-unattend-password", secret: "UABhAHMAcwB3AG8AcgBkADEAMgAzAA==", noTrunc: true,
			text: "<UserAccounts><AdministratorPassword><Value>UABhAHMAcwB3AG8AcgBkADEAMgAzAA==</Value><PlainText>false</PlainText></AdministratorPassword>"}
	})
	simple("config-secret", "jwt_secret: ", func(g *gen) string { return g.s(csAlnum, 32) }, "\n", true)
	simple("config-secret", "# Django settings\nSECRET_KEY = '", func(g *gen) string { return g.s(csAlnum, 12) + "!@#" + g.s(csAlnum, 20) }, "'\n", true)
	simple("generic-api-key", `api_key = "`, func(g *gen) string { return g.s(csAlnum, 32) }, "\"\n", true)
	add(func(*gen) ruleCase {
		return ruleCase{rule: "php-db-password", secret: "Wp!Db#Pass2024", noTrunc: true, text: "define( 'DB_USER', 'wp' );\ndefine( 'DB_PASSWORD', 'Wp!Db#Pass2024' );\n"}
	})
	add(func(*gen) ruleCase {
		return ruleCase{rule: "odbc-pwd", secret: "Odbc!Pass42", noTrunc: true, text: "Driver={ODBC Driver 17};Server=sql01;UID=sa;PWD=Odbc!Pass42;\n"}
	})
	simple("azure-publish-settings-password", `<publishProfile profileName="app - Web Deploy" userName="$app" userPWD="`, func(g *gen) string { return g.s(csAlnum, 60) }, `" />`, true)
	// shell history
	shell := func(rule, line, secret string, meta map[string]string, neg ...string) {
		add(func(*gen) ruleCase {
			return ruleCase{rule: rule, text: "cd /srv\n" + line + "\nls -la\n", secret: secret, meta: meta, noTrunc: true, neg: neg}
		})
	}
	shell("shell-mysql-password", "mysql -u root -pMyS3cret! -h db01 appdb", "MyS3cret!", nil, "mysql -u root -p appdb", "mysql -P 3306 -u x -p", "mysql -u root -p$MYSQL_PWD")
	shell("shell-sshpass", "sshpass -p 'Ssh!Pass99' ssh admin@10.0.0.5", "Ssh!Pass99", nil, "sshpass -p \"$PASS\" ssh x")
	shell("shell-curl-basic-auth", "curl -s -u admin:Curl!Pass7 https://api.internal/v1/status", "Curl!Pass7", map[string]string{"user": "admin"}, "curl -u \"$USER:$PASS\" https://x")
	shell("shell-export-secret", "export STRIPE_SECRET=Exp0rt!Secret", "Exp0rt!Secret", nil, "export GITHUB_TOKEN=$(cat ~/.token)", "export PATH=/usr/bin:$PATH")
	shell("shell-pgpassword", "PGPASSWORD=PgEnv!Pass5 psql -h db -U app", "PgEnv!Pass5", nil, "PGPASSWORD=$PW psql")
	shell("shell-htpasswd", "htpasswd -bc /etc/nginx/.htpasswd admin Ht!Pass123", "Ht!Pass123", map[string]string{"user": "admin"})
	shell("shell-smbclient", "smbclient //fs01/share -U backup%Smb!Pass8", "Smb!Pass8", map[string]string{"user": "backup"})
	shell("shell-redis-cli", "redis-cli -h cache01 -a Redis!Pass3 ping", "Redis!Pass3", nil)
	shell("shell-docker-login", "docker login -u ci -p Dock!Pass42 registry.corp.io", "Dock!Pass42", nil, "docker login -u ci --password-stdin registry.corp.io")
	shell("shell-wget-password", "wget --user=ci --password=Wget!Pass9 https://repo.corp/x.tar.gz", "Wget!Pass9", nil)
	shell("shell-net-user", "net user svc_backup Backup!Pass1 /add", "Backup!Pass1", map[string]string{"user": "svc_backup"}, "net user svc_backup * /add")
	shell("shell-ldap-bind-password", `ldapsearch -x -D "cn=admin,dc=corp" -w Ldap!Pass6 -b dc=corp`, "Ldap!Pass6", nil, `ldapsearch -x -D "cn=admin" -W -b dc=corp`)
	shell("shell-openssl-pass", "openssl pkcs12 -export -in c.pem -out c.p12 -passout pass:P12!Pass77", "P12!Pass77", nil, "openssl pkcs12 -passin env:P12PASS")
	shell("shell-chpasswd-echo", "echo 'deploy:Chp!Pass55' | sudo chpasswd", "Chp!Pass55", map[string]string{"user": "deploy"})
	shell("shell-passwd-stdin", "echo 'Stdin!Pass4' | passwd --stdin deploy", "Stdin!Pass4", nil)
	// password hashes
	hash := func(rule, user string, mk func(g *gen) string, locked bool) {
		add(func(g *gen) ruleCase {
			h := mk(g)
			lk := ""
			c := ruleCase{rule: rule, secret: h, meta: map[string]string{"user": user}, noTrunc: true,
				neg: []string{user + ":*:19700:0:99999:7:::\n", user + ":!:19700:0:99999:7:::\n", user + ":!*:19700::::::\n"}}
			if locked {
				lk = "!"
				c.meta["locked"] = "true"
				c.sev = SeverityMedium
			}
			c.text = "root:*:19700:0:99999:7:::\ndaemon:*:19700:0:99999:7:::\n" + user + ":" + lk + h + ":19700:0:99999:7:::\nnobody:*:19700:0:99999:7:::\n"
			return c
		})
	}
	hash("shadow-md5crypt", "admin", func(g *gen) string { return "$1$" + g.s(csCrypt, 8) + "$" + g.s(csCrypt, 22) }, false)
	hash("shadow-sha256crypt", "svc", func(g *gen) string { return "$5$" + g.s(csCrypt, 16) + "$" + g.s(csCrypt, 43) }, false)
	hash("shadow-sha512crypt", "ubuntu", func(g *gen) string { return "$6$" + g.s(csCrypt, 16) + "$" + g.s(csCrypt, 86) }, false)
	hash("shadow-sha512crypt", "olduser", func(g *gen) string { return "$6$rounds=5000$" + g.s(csCrypt, 16) + "$" + g.s(csCrypt, 86) }, true)
	hash("shadow-yescrypt", "debian", func(g *gen) string { return "$y$j9T$" + g.s(csCrypt, 22) + "$" + g.s(csCrypt, 43) }, false)
	hash("shadow-gost-yescrypt", "alt", func(g *gen) string { return "$gy$j9T$" + g.s(csCrypt, 22) + "$" + g.s(csCrypt, 43) }, false)
	hash("shadow-bcrypt", "bsd", func(g *gen) string { return "$2b$12$" + g.s(csCrypt, 53) }, false)
	add(func(g *gen) ruleCase {
		h := "$apr1$" + g.s(csCrypt, 8) + "$" + g.s(csCrypt, 22)
		return ruleCase{rule: "htpasswd-apr1", secret: h, meta: map[string]string{"user": "admin"}, noTrunc: true, text: "admin:" + h + "\nguest:" + "$apr1$x\n"}
	})
	add(func(g *gen) ruleCase {
		h := "{SHA}" + b64(string(g.bytes(20)))
		return ruleCase{rule: "htpasswd-sha1", secret: h, meta: map[string]string{"user": "admin"}, noTrunc: true, text: "admin:" + h + "\n"}
	})
	return cs
}

// structuralRules are tested with real keys in keys_test.go.
var structuralRules = map[string]bool{
	"private-key-rsa": true, "private-key-ec": true, "private-key-dsa": true, "private-key-pkcs8": true,
	"private-key-pkcs8-encrypted": true, "private-key-openssh": true, "private-key-pgp": true, "private-key-putty": true,
	"kerberos-keytab": true, "aes-key-schedule": true, "rsa-private-key-der": true, "gcp-service-account-key": true,
	"kubeconfig-client-key-data": true,
}

// wrap puts text in a realistic binary context: a slab of random bytes
// around it, separated by line breaks, at an odd offset.
func wrap(g *gen, text []byte) ([]byte, int) {
	pre := append(g.bytes(3001), '\n')
	out := append(append(pre, text...), '\n')
	return append(out, g.bytes(2000)...), len(pre)
}

func TestRuleTable(t *testing.T) {
	e := testEngine(t, EngineOptions{})
	covered := map[string]bool{}
	byID := map[string]Rule{}
	for _, r := range Builtin() {
		byID[r.ID] = r
	}
	for i, mk := range ruleCases() {
		c := mk(newGen(strings.Repeat("x", i)))
		covered[c.rule] = true
		rule, ok := byID[c.rule]
		if !ok {
			t.Fatalf("case %d: unknown rule %s", i, c.rule)
		}
		t.Run(c.rule, func(t *testing.T) {
			g := newGen(c.rule)
			want := c.sev
			if want == 0 {
				want = rule.Severity
			}
			for _, enc := range []string{"", "utf16le"} {
				text := []byte(c.text)
				if enc != "" {
					if rule.NoUTF16 {
						continue
					}
					text = toUTF16(c.text)
				}
				buf, off := wrap(g, text)
				ms := matchesOf(e.FindAll(buf, ScanOptions{}), c.rule)
				var hit *Match
				for i := range ms {
					if ms[i].Fingerprint == fp(c.secret) {
						hit = &ms[i]
					}
				}
				if hit == nil {
					t.Fatalf("%s (encoding %q): secret not found in %q; got:\n%s", c.rule, enc, c.text, describe(ms))
				}
				if hit.Severity != want || hit.Encoding != enc {
					t.Errorf("%s: severity %s encoding %q, want %s %q", c.rule, hit.Severity, hit.Encoding, want, enc)
				}
				scale := 1
				if enc != "" {
					scale = 2
				}
				si := strings.Index(c.text, c.secret)
				if si >= 0 && (hit.Start != int64(off+scale*si) || hit.End != int64(off+scale*(si+len(c.secret)))) {
					t.Errorf("%s: span [%d,%d), want [%d,%d)", c.rule, hit.Start, hit.End, off+scale*si, off+scale*(si+len(c.secret)))
				}
				for k, v := range c.meta {
					if hit.Meta[k] != v {
						t.Errorf("%s: meta %s=%q, want %q (meta %v)", c.rule, k, hit.Meta[k], v, hit.Meta)
					}
				}
			}
			// Near misses: explicit ones, then the secret replaced by a
			// template, by a placeholder run, and truncated.
			negs := append([]string{}, c.neg...)
			negs = append(negs, strings.Replace(c.text, c.secret, "${SECRET_VALUE}", 1),
				strings.Replace(c.text, c.secret, strings.Repeat("x", len(c.secret)), 1))
			if !c.noTrunc {
				negs = append(negs, strings.Replace(c.text, c.secret, c.secret[:len(c.secret)*2/3], 1))
			}
			for _, n := range negs {
				buf, _ := wrap(g, []byte(n))
				if ms := matchesOf(e.FindAll(buf, ScanOptions{}), c.rule); len(ms) > 0 && ms[0].Severity > SeverityLow {
					t.Errorf("%s: near miss %q matched:\n%s", c.rule, n, describe(ms))
				}
			}
		})
	}
	for id := range byID {
		if !covered[id] && !structuralRules[id] {
			t.Errorf("rule %s has no test case", id)
		}
	}
}

// TestBuiltinRules checks the rule set's shape.
func TestBuiltinRules(t *testing.T) {
	rules := Builtin()
	if len(rules) < 100 {
		t.Fatalf("%d built-in rules, want >= 100", len(rules))
	}
	cats := map[string]int{}
	for _, r := range rules {
		cats[r.Category]++
		if r.Description == "" || r.Category == "" {
			t.Errorf("rule %s lacks description or category", r.ID)
		}
		if len(r.Keywords) == 0 && !structuralRules[r.ID] {
			t.Errorf("rule %s has no keywords", r.ID)
		}
		for _, k := range r.Keywords {
			if len(k) < 4 {
				t.Errorf("rule %s: keyword %q shorter than 4 bytes slows the prefilter", r.ID, k)
			}
		}
	}
	for _, c := range []string{"private-key", "cloud", "code-hosting", "saas", "jwt", "credentials", "shell-history", "password-hash", "memory"} {
		if cats[c] == 0 {
			t.Errorf("no rule in category %s", c)
		}
	}
	t.Logf("%d rules: %v", len(rules), cats)
	e := testEngine(t, EngineOptions{})
	if e.Margin() < 2*(12<<10) {
		t.Errorf("margin %d too small for a UTF-16 armoured key", e.Margin())
	}
	t.Logf("margin %d", e.Margin())
}

// TestBuiltinRegexpsCompile: the built-in rules compile their regexps on
// first use, where an error would silently disable the rule; so each must
// compile here, as a user rule would have to in NewEngine.
func TestBuiltinRegexpsCompile(t *testing.T) {
	for _, r := range Builtin() {
		if !r.builtin {
			t.Fatalf("rule %s not marked built-in", r.ID)
		}
		r.builtin = false
		if _, err := compileRule(r); err != nil {
			t.Errorf("built-in rule: %v", err)
		}
	}
}

// TestNoFindingsInNoise: random bytes, random base64/hex text and prose
// must not produce findings above low severity.
func TestNoFindingsInNoise(t *testing.T) {
	e := testEngine(t, EngineOptions{})
	g := newGen("noise")
	var buf bytes.Buffer
	buf.Write(g.bytes(1 << 20))
	for range 4000 {
		buf.WriteString(g.s(csB64, 76) + "\n")
	}
	for range 2000 {
		buf.WriteString(g.s(csHex, 64) + " " + g.s(csAlnum, 40) + " " + g.s(csURL, 50) + "\n")
	}
	buf.Write(textBlock(g.r, 1<<20))
	for _, m := range e.FindAll(buf.Bytes(), ScanOptions{Memory: true}) {
		if m.Severity > SeverityLow {
			t.Errorf("false positive: %s [%d,%d) %s", m.RuleID, m.Start, m.End, m.Preview)
		}
	}
}
