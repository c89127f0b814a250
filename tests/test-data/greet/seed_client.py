# The classic greeting client from the study notes, ported to Python 3: bytes instead of str,
# print() as a function, and the server's address taken from the command line. Nothing else is
# changed: names are sent without a newline and each recv() is taken as one reply.
import socket
import sys

host = sys.argv[1] if len(sys.argv) > 1 else '127.0.0.1'
port = int(sys.argv[2]) if len(sys.argv) > 2 else 9999

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect((host, port))
print(s.recv(1024).decode().rstrip('\n'))
for data in ['Michael', 'Tracy', 'Sarah']:
    s.send(data.encode())
    print(s.recv(1024).decode().rstrip('\n'))
s.send(b'exit')
s.close()
