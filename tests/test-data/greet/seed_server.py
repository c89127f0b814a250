# The classic threaded greeting server from the study notes, ported to Python 3: bytes, print(),
# the listening address from the command line, and the thread started inside the accept loop
# (in the notes t.start() sits outside the loop, so no connection is ever served). The
# one-second sleep per message is kept unless a delay of 0 is given, for benchmarking.
import socket
import sys
import threading
import time

host = sys.argv[1] if len(sys.argv) > 1 else '127.0.0.1'
port = int(sys.argv[2]) if len(sys.argv) > 2 else 9999
delay = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0


def tcplink(sock, addr):
    sock.send(b'Welcome!')
    while True:
        data = sock.recv(1024)
        if delay:
            time.sleep(delay)
        if data == b'exit' or not data:
            break
        sock.send(b'Hello, %s!' % data)
    sock.close()


s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(1024)
print('listening tcp %s:%d' % s.getsockname(), flush=True)
while True:
    sock, addr = s.accept()
    t = threading.Thread(target=tcplink, args=(sock, addr), daemon=True)
    t.start()
