package dev.gradclip.djl;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.SymbolBlock;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.Map;

/**
 * Arrays that DJL with PyTorch cannot make (or cannot make here): a real array behind a proxy that
 * answers some methods differently, for a GPU device, another engine, or a data type whose
 * creation aborts the JVM.
 */
final class StandIns {

    private StandIns() {}

    /** {@code real}, except that the named no-argument methods return the given values. */
    static NDArray array(NDArray real, Map<String, Object> answers) {
        return (NDArray) Proxy.newProxyInstance(StandIns.class.getClassLoader(), new Class<?>[] {NDArray.class},
                (proxy, method, args) -> {
                    if (method.getParameterCount() == 0 && answers.containsKey(method.getName())) {
                        return answers.get(method.getName());
                    }
                    try {
                        return method.invoke(real, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
    }

    /** A manager like {@code real}'s whose engine has this name. */
    static NDManager managerOfEngine(NDManager real, String engineName) {
        Engine engine = new Engine() {
            @Override
            public Engine getAlternativeEngine() {
                return null;
            }

            @Override
            public String getEngineName() {
                return engineName;
            }

            @Override
            public int getRank() {
                return 99;
            }

            @Override
            public String getVersion() {
                return "0";
            }

            @Override
            public boolean hasCapability(String capability) {
                return false;
            }

            @Override
            public SymbolBlock newSymbolBlock(NDManager manager) {
                throw new UnsupportedOperationException();
            }

            @Override
            public Model newModel(String name, Device device) {
                throw new UnsupportedOperationException();
            }

            @Override
            public NDManager newBaseManager() {
                throw new UnsupportedOperationException();
            }

            @Override
            public NDManager newBaseManager(Device device) {
                throw new UnsupportedOperationException();
            }
        };
        return (NDManager) Proxy.newProxyInstance(StandIns.class.getClassLoader(), new Class<?>[] {NDManager.class},
                (proxy, method, args) -> {
                    if (method.getName().equals("getEngine") && method.getParameterCount() == 0) {
                        return engine;
                    }
                    try {
                        return method.invoke(real, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
    }
}
