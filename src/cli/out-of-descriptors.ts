/**
 * What the `herald` command says when the process has no file descriptor
 * left: EMFILE (its own limit) or ENFILE (the system's). A module of its own,
 * importing nothing: main.ts needs it when the rest could not be loaded.
 */
export function outOfDescriptors(code: 'EMFILE' | 'ENFILE'): string {
  return `the process ran out of file descriptors (${code}).`
    + ' Raise its open-file limit to at least 256 (ulimit -n in the shell, LimitNOFILE= in a systemd unit; docs/deploy.md).';
}
