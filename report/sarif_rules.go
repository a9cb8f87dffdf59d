package report

import (
	"cmp"
	"strings"
)

// classSteps says, per class, what removes such copies in general: the
// help of every SARIF rule. Each finding's own steps (Remediate) name the
// snapshot, files and commands.
var classSteps = []struct{ class, markdown string }{
	{RemediationAll, "rotate the credential as soon as any copy is outside the guest's control (for a key, revoke its fingerprint wherever it is trusted)"},
	{ExposureLive, "delete or replace the file in the guest, then wipe free space"},
	{ExposureDeleted, "wipe free space: `fstrim -av` in the guest with discard enabled, `zerofree`, or `virt-sparsify --in-place IMAGE` offline"},
	{ExposureSnapshot, "delete the snapshot (`qemu-img snapshot -d NAME IMAGE`, `virsh snapshot-delete DOMAIN NAME`), then rewrite the image: freed clusters keep the bytes"},
	{ExposureBacking, "flatten the image off the backing file (`qemu-img rebase -b '' IMAGE`, or `qemu-img convert`), then delete or rewrite the backing file: every image based on it has the copy"},
	{ExposureUnreferenced, "rewrite the image file so that unreferenced clusters go (`qemu-img convert -O qcow2 FILE FILE.new`)"},
	{ExposureMemory, "delete the saved RAM: the snapshot whose VM state holds it, or the save file"},
	{ExposureLayer, "rebuild the image without the file in that layer and delete the old image from registries: squashing alone keeps the old layers"},
}

// sarifRuleFor describes the rule of f for code-scanning UIs.
func sarifRuleFor(f *Finding) sarifRule {
	short := cmp.Or(f.Description, f.Rule)
	var about, fix string
	switch f.Category {
	case CategoryRollbackRisk:
		short = "Rollback risk: " + strings.ReplaceAll(strings.TrimPrefix(f.Rule, "rollback-"), "-", " ")
		about = "Reverting the VM to the snapshot, backing file or backup that the result names brings back what the current state removed, revoked or replaced."
		fix = "Delete that snapshot or flatten the image off that backing file (each result gives the command), or make sure nobody reverts to it."
	case CategoryClonedIdentity:
		short = "The same identity in several VMs"
		about = "Clones share one identity: an SSH host key, TLS or WireGuard key, other private key or /etc/machine-id copied into several VMs, so that one can pose as another."
		fix = "Give every clone but one its own identity: `virt-sysprep -a IMAGE --operations ssh-hostkeys,machine-id`, and issue new TLS and WireGuard keys."
	default:
		about = "imgaudit reports each secret once, with every place it persists in the image: live files, free blocks, snapshots, backing files, unreferenced clusters, saved RAM and container layers. Every copy but a live file is outside the guest's control: nothing done inside the VM removes it."
		var b strings.Builder
		b.WriteString("What removes each copy (each result names its own snapshots, files and commands):\n")
		for _, s := range classSteps {
			b.WriteString("- " + s.class + ": " + s.markdown + "\n")
		}
		fix = strings.TrimSuffix(b.String(), "\n")
	}
	full := strings.TrimSuffix(short, ".") + ". " + about
	uri := RuleHelpURI(f.Rule)
	md := "**" + markdownEscape(strings.TrimSuffix(short, ".")) + "**\n\n" + about + "\n\n" + fix + "\n\n[Rule documentation](" + uri + ")"
	text := full + "\n\n" + strings.ReplaceAll(fix, "`", "") + "\n\nSee " + uri
	return sarifRule{
		ID:               f.Rule,
		Name:             ruleName(f.Rule),
		ShortDescription: sarifText{Text: short},
		FullDescription:  sarifText{Text: full},
		Help:             sarifHelp{Text: text, Markdown: md},
		HelpURI:          uri,
		Properties: map[string]any{
			"category": f.Category,
			"tags":     ruleTags(f.Category),
		},
	}
}

// markdownEscape keeps a description from a user's rules file from being
// read as markup.
func markdownEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("\\`*_{}[]<>()#+!|", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
