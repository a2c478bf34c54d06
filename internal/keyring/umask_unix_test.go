//go:build unix

package keyring

import "syscall"

func syscallUmask(m int) int { return syscall.Umask(m) }
