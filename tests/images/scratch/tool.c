/* tool: everything the tests of a shell-less image need, as one static binary (the whole of
 * warmpool-test/scratch, FROM scratch). And the attacks a client inside a sandbox would try on
 * warmpool's agent, run by the agent's threat tests.
 *
 *   tool sleep              wait for a signal (the container's command)
 *   tool echo WORDS...      print them
 *   tool cat                copy stdin to stdout
 *   tool env NAME           print a variable ("<unset>" when it is not set)
 *   tool exit N             exit N
 *   tool write PATH TEXT    write a file
 *   tool read PATH          print a file
 *   tool id                 print uid and gid
 *   tool tty                print whether stdin is a terminal, and its size
 *   tool orphan             leave a process behind: double fork, new session, empty env
 *   tool xattr PATH N V     set extended attribute N to V on PATH
 *   tool attack             try every way into PID 1 (the agent); print what each gave
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static void on_term(int s) { (void)s; _exit(0); }

static int try(const char *what, int ok) {
    printf("%s %s\n", what, ok ? "ALLOWED" : "denied");
    return ok;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *m = argv[1];
    if (!strcmp(m, "sleep")) {
        signal(SIGTERM, on_term);
        signal(SIGINT, on_term);
        for (;;) pause();
    }
    if (!strcmp(m, "echo")) {
        for (int i = 2; i < argc; i++) printf("%s%s", argv[i], i + 1 < argc ? " " : "");
        printf("\n");
        return 0;
    }
    if (!strcmp(m, "cat")) {
        char b[4096];
        ssize_t n;
        while ((n = read(0, b, sizeof b)) > 0) if (write(1, b, n) != n) return 1;
        return 0;
    }
    if (!strcmp(m, "env") && argc > 2) {
        const char *v = getenv(argv[2]);
        printf("%s\n", v ? v : "<unset>");
        return 0;
    }
    if (!strcmp(m, "exit") && argc > 2) return atoi(argv[2]);
    if (!strcmp(m, "write") && argc > 3) {
        FILE *f = fopen(argv[2], "w");
        if (!f) { perror(argv[2]); return 1; }
        fputs(argv[3], f);
        return fclose(f) ? 1 : 0;
    }
    if (!strcmp(m, "read") && argc > 2) {
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0) { perror(argv[2]); return 1; }
        char b[4096];
        ssize_t n;
        while ((n = read(fd, b, sizeof b)) > 0) if (write(1, b, n) != n) return 1;
        return 0;
    }
    if (!strcmp(m, "xattr") && argc > 4) {
        if (setxattr(argv[2], argv[3], argv[4], strlen(argv[4]), 0)) { perror("setxattr"); return 1; }
        return 0;
    }
    if (!strcmp(m, "id")) {
        printf("%d %d\n", (int)getuid(), (int)getgid());
        return 0;
    }
    if (!strcmp(m, "tty")) {
        struct winsize ws;
        if (!isatty(0)) { printf("not a tty\n"); return 0; }
        ioctl(0, TIOCGWINSZ, &ws);
        printf("tty %d %d\n", ws.ws_row, ws.ws_col);
        return 0;
    }
    if (!strcmp(m, "orphan")) {
        pid_t p = fork();
        if (p == 0) {
            setsid();
            if (fork() == 0) {
                char *env[] = {NULL};
                char *args[] = {"/tool", "sleep", NULL};
                execve("/proc/self/exe", args, env);
                _exit(1);
            }
            _exit(0);
        }
        waitpid(p, NULL, 0);
        printf("orphaned\n");
        return 0;
    }
    if (!strcmp(m, "attack")) {
        int any = 0;
        int fd = open("/proc/1/fd/1", O_WRONLY);
        any |= try("write-agent-stdout", fd >= 0);
        if (fd >= 0) { (void)write(fd, "WPF1forged", 10); close(fd); }
        fd = open("/proc/1/fd/0", O_RDONLY | O_NONBLOCK);
        any |= try("read-agent-stdin", fd >= 0);
        fd = open("/proc/1/mem", O_RDONLY);
        any |= try("read-agent-memory", fd >= 0);
        fd = open("/proc/1/environ", O_RDONLY);
        any |= try("read-agent-environ", fd >= 0);
        char buf[64];
        struct iovec local = {buf, sizeof buf}, remote = {(void *)0x400000, sizeof buf};
        any |= try("process_vm_readv-agent", process_vm_readv(1, &local, 1, &remote, 1, 0) >= 0 || errno == EFAULT);
        any |= try("ptrace-agent", ptrace(PTRACE_ATTACH, 1, 0, 0) == 0);
        pid_t parent = getppid();
        if (parent > 1) {
            any |= try("ptrace-supervisor", ptrace(PTRACE_ATTACH, parent, 0, 0) == 0);
            char path[64];
            snprintf(path, sizeof path, "/proc/%d/fd/4", (int)parent);
            fd = open(path, O_WRONLY);
            any |= try("write-supervisor-report", fd >= 0);
        }
        kill(1, SIGKILL);
        usleep(200000);
        any |= try("kill-agent", kill(1, 0) != 0);
        printf("attack %s\n", any ? "GOT-IN" : "held");
        return 0;
    }
    fprintf(stderr, "tool: unknown mode %s\n", m);
    return 2;
}
