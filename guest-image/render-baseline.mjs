// Prints the fail-closed baseline ruleset exactly as `podvm-mesh render nft --baseline`
// does: from the built netfilter renderer (dist/), the one source of the ruleset.
import { renderBaseline } from '../dist/netfilter/index.js'

process.stdout.write(renderBaseline().nft)
