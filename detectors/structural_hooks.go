package detectors

// This file is the only place that calls the structural validators, so that
// their API can change without touching the engine.

import "github.com/imgaudit/imgaudit/detectors/structural"

type keyInfo = structural.KeyInfo

func unescapeArmored(b []byte) []byte              { return structural.UnescapeArmored(b) }
func parsePrivateKeyPEM(b []byte) (keyInfo, error) { return structural.ParsePrivateKeyPEM(b) }
func parsePPK(b []byte) (keyInfo, error)           { return structural.ParsePPK(b) }
func parsePGPPrivate(b []byte) (keyInfo, error)    { return structural.ParsePGPPrivate(b) }
func parseKeytab(b []byte) (int, []string, error)  { return structural.ParseKeytab(b) }
func githubTokenValid(tok string) bool             { return structural.GitHubClassicTokenValid(tok) }
func jwtValid(tok string) bool                     { return structural.JWTValid(tok) }
func findMemoryKeys(buf []byte, maxBitErrors int, aes func(off int, key []byte), der func(off, length int, info keyInfo)) {
	structural.FindMemoryKeys(buf, maxBitErrors, aes, der)
}
