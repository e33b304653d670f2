// A TDX RTMR pin as the measured config and `--coordinator-rtmr` write it:
// `<index 0-3>=<hex of 48 bytes>`. A leaf module: the pin checks need only this.
export const RTMR_PIN = /^([0-3])=([0-9a-f]{96})$/
