// fx MASK_FD MASK_DIR BATCH_US -- cmd : fanotify cost experiment
#define _GNU_SOURCE
#include <sys/fanotify.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <pthread.h>
#include <poll.h>
#include <sys/wait.h>
#include <string.h>
static int g1=-1,g2=-1; static long batch; static volatile int done;
static char buf[1<<20];
static void drain(int g, int fds){ if(g<0)return; for(;;){ ssize_t n=read(g,buf,sizeof buf); if(n<=0)break;
  if(fds){ struct fanotify_event_metadata*m=(void*)buf; while(FAN_EVENT_OK(m,n)){ if(m->fd>=0) close(m->fd); m=FAN_EVENT_NEXT(m,n);} } } }
static void* rd(void*a){ while(!done){ if(batch) usleep(batch); struct pollfd p[2]={{g1,POLLIN},{g2,POLLIN}}; poll(p,2,100); drain(g1,1); drain(g2,0);} return 0;}
int main(int c,char**v){ unsigned long m1=strtoul(v[1],0,0), m2=strtoul(v[2],0,0); batch=atol(v[3]);
 if(m1){ g1=fanotify_init(FAN_CLASS_NOTIF|FAN_UNLIMITED_QUEUE|FAN_NONBLOCK|FAN_CLOEXEC,O_RDONLY|O_LARGEFILE);
  if(fanotify_mark(g1,FAN_MARK_ADD|FAN_MARK_FILESYSTEM,m1,AT_FDCWD,"/tmp/tb")) perror("mark1"); }
 if(m2){ g2=fanotify_init(FAN_CLASS_NOTIF|FAN_UNLIMITED_QUEUE|FAN_NONBLOCK|FAN_CLOEXEC|FAN_REPORT_DFID_NAME,O_RDONLY);
  if(g2<0)perror("init2"); if(fanotify_mark(g2,FAN_MARK_ADD|FAN_MARK_FILESYSTEM,m2,AT_FDCWD,"/tmp/tb")) perror("mark2"); }
 pthread_t t; pthread_create(&t,0,rd,0);
 pid_t p=fork(); if(!p){ execvp(v[5],v+5); _exit(127);} int st; waitpid(p,&st,0); done=1; pthread_join(t,0); return 0; }
