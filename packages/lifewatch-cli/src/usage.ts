// Exit statuses, as `timeout(1)`, `docker run` and `systemd-run --wait` use them, and the error
// for a bad command line.

/** lifewatch's own failure, bad flags included (the command's own statuses stay its own). */
export const EXIT_FAILURE = 125
/** The command was found but could not be run (not executable, not a binary...). */
export const EXIT_CANNOT_RUN = 126
/** The command was not found. */
export const EXIT_NOT_FOUND = 127
/** --deadline expired: the command was stopped (as `timeout(1)`). */
export const EXIT_DEADLINE = 124

/** A bad command line: printed as one line, exit status 125. */
export class UsageError extends Error {}
