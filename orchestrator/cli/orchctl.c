/* orchctl: command-line client (work in progress: validate and plan land first). */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "usage: orchctl validate|plan FILE...\n");
    return 2;
}
