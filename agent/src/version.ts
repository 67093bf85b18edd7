/** The isobuild version, printed by `isobuild version` and recorded in rendered files. */
export const VERSION = '0.1.0';
