// `node --import ./ts-register.mjs script.ts`: installs ts-hooks.mjs for the process.
import { register } from 'node:module'

register('./ts-hooks.mjs', import.meta.url)
