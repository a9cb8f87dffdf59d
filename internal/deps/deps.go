package main
import (
 _ "github.com/diskfs/go-diskfs"
 _ "github.com/google/go-containerregistry/pkg/v1/remote"
 _ "github.com/schollz/progressbar/v3"
 _ "github.com/klauspost/compress/zstd"
 _ "github.com/BurntSushi/toml"
 _ "golang.org/x/sys/unix"
)
func main(){}
